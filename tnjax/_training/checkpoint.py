"""Checkpoints: any pytree of arrays plus JSON metadata in one msgpack file.

Written atomically (a temporary file renamed into place), so a crash never leaves a
half-written checkpoint; read back against a template pytree whose structure, shapes
and dtypes are checked, so a mismatched or corrupt file raises a clear error.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import jax
import numpy as np
from flax import serialization

__all__ = ["CheckpointError", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint"]

_FORMAT = "tnjax-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match what it is loaded into."""


def save_checkpoint(path: str, tree: Any, *, meta: dict | None = None) -> str:
    """Save the arrays of ``tree`` (any pytree) and JSON-able ``meta`` to ``path``.

    Examples:
        >>> import os, tempfile, jax.numpy as jnp
        >>> from tnjax import save_checkpoint, load_checkpoint
        >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.msgpack")
        >>> _ = save_checkpoint(p, {"w": jnp.arange(3.0)}, meta={"step": 7})
        >>> tree, meta = load_checkpoint(p, {"w": jnp.zeros(3)})
        >>> tree["w"].tolist(), meta["step"]
        ([0.0, 1.0, 2.0], 7)
    """
    leaves = jax.tree_util.tree_leaves(tree)
    payload = {
        "format": _FORMAT,
        "meta": json.dumps(meta or {}),
        "n_leaves": len(leaves),
        "leaves": {str(i): np.asarray(x) for i, x in enumerate(leaves)},
    }
    data = serialization.msgpack_serialize(payload)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.basename(path) + "."
    for name in os.listdir(folder):  # left by a writer that was killed mid-write
        if name.startswith(prefix) and name.endswith(".tmp"):
            os.remove(os.path.join(folder, name))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"missing checkpoint {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        payload = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several unrelated types on bad bytes
        raise CheckpointError(
            f"{path!r} is not a readable tnjax checkpoint (corrupt or truncated: {e})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"{path!r} is not a tnjax checkpoint (format {_FORMAT} expected)")
    return payload


def read_checkpoint_meta(path: str) -> dict:
    """The JSON metadata of a checkpoint, without its arrays' template."""
    return json.loads(_read(path)["meta"])


def load_checkpoint(path: str, target: Any) -> tuple[Any, dict]:
    """Restore ``(tree, meta)`` from ``path``; ``target`` is a pytree of the same structure
    (its leaves give the expected shapes and dtypes, their values are not used).

    Raises:
        CheckpointError: missing or corrupt file, or one saved from a different structure.
    """
    return _restore(path, target, tail=False)


def _restore(path: str, target: Any, *, tail: bool) -> tuple[Any, dict]:
    """``tail``: ``target`` matches the *last* arrays of the file (e.g. the best
    parameters after the training state), so that no optimizer is needed to read them."""
    payload = _read(path)
    leaves, treedef = jax.tree_util.tree_flatten(target)
    stored = payload["leaves"]
    n = payload["n_leaves"]
    if len(stored) != n or (n < len(leaves) if tail else n != len(leaves)):
        raise CheckpointError(
            f"{path!r} holds {payload['n_leaves']} arrays but the target has {len(leaves)}: it "
            "was saved from a different model or optimizer configuration"
        )
    offset = n - len(leaves) if tail else 0
    out = []
    for i, like in enumerate(leaves):
        x = np.asarray(stored[str(i + offset)])
        want_shape = tuple(np.shape(like))
        want_dtype = np.asarray(like).dtype if not hasattr(like, "dtype") else like.dtype
        if x.shape != want_shape or x.dtype != want_dtype:
            raise CheckpointError(
                f"array {i + offset} of {path!r} is {x.dtype}{list(x.shape)} but the target expects "
                f"{want_dtype}{list(want_shape)}: saved from a different configuration"
            )
        out.append(jax.numpy.asarray(x))
    return jax.tree_util.tree_unflatten(treedef, out), json.loads(payload["meta"])
