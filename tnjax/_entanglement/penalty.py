"""Entropy penalties: one differentiable scalar from the entanglement of a network across
a set of partitions (or all tree edges), for regularizing training.

The partitions share one Gram up-sweep; each takes the cheapest exact route its plan
picks (traces along a small min-cut, or four copies), and the summed memory is budgeted
before anything is traced.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jaxtyping import Array, Float

from tnjax._core.network import TreeTN
from tnjax._core.partition import Partition
from tnjax._entanglement.cutspectrum import (
    _cut_of,
    cut_grams,
)
from tnjax._entanglement.renyi2 import DEFAULT_MAX_BYTES, renyi2, renyi2_plan
from tnjax._entanglement.spectral import (
    entropy_of,
    gram_pair_spectrum,
)
from tnjax._entanglement.sweep import _check_net, edge_entropies, up_sweep

__all__ = ["entropy_penalty"]

_KINDS = ("renyi2", "von_neumann", "renyi", "geometric")


def _as_partition_list(partitions) -> list:
    if isinstance(partitions, Partition):
        return [partitions]
    if hasattr(partitions, "dtype") and getattr(partitions, "ndim", 0) >= 1:
        if partitions.dtype == bool and partitions.ndim == 1:
            return [partitions]
    if isinstance(partitions, Sequence) and not isinstance(partitions, str):
        if len(partitions) == 0:
            raise ValueError("partitions is empty: give at least one Partition, or 'edges'")
        if all(isinstance(p, bool) for p in partitions):
            raise TypeError(
                "partitions is a list of bools: wrap a mask in a numpy array or Partition"
            )
        return list(partitions)
    raise TypeError(
        f"partitions must be a Partition, a boolean mask, a sequence of them, or 'edges'; "
        f"got {type(partitions).__name__}"
    )


def entropy_penalty(
    net: TreeTN,
    partitions,
    *,
    kind: str = "renyi2",
    alpha: float | None = None,
    classes="mean",
    max_rank: int = 4096,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> Float[Array, ""]:
    """A scalar entanglement regularizer: the mean entropy over ``partitions``.

    A pure function of the network, jit- and grad-friendly. Add ``weight * penalty`` to a
    loss: a **positive weight penalises** entanglement across the partitions (pushes the
    entropy down), a **negative weight rewards** it (pushes it up). The value is an
    entropy in nats (non-negative).

    Args:
        net: the network.
        partitions: a :class:`Partition` (or boolean mask), a sequence of them (the
            entropies are averaged), or ``"edges"``: every tree edge (subtree vs rest),
            averaged, from one sweep.
        kind: ``"renyi2"`` (default: exact for any partition, no rank limit, no
            eigen-decomposition), ``"von_neumann"``, ``"renyi"`` (with ``alpha``) or
            ``"geometric"`` (these take the full spectrum: along a min-cut of rank up to
            ``max_rank`` for a partition, or from the sweep for ``"edges"``).
        alpha: Renyi order for ``kind="renyi"``.
        classes: ``"mean"`` (each class's entropy, averaged over classes), ``"sum"`` (the
            entropy with the class index on side B), or a class index.
        max_rank: budget on the min-cut rank for the full-spectrum kinds.
        max_bytes: budget on the estimated memory of each Renyi-2 partition (see
            :func:`renyi2_plan`); over it, a ``ValueError`` before anything is allocated.

    Returns:
        A scalar, never negative; NaN if the network holds a NaN or inf.

    The partitions share one up-sweep of Gram matrices; each takes the cheapest exact
    route (:func:`renyi2_plan`). Safe inside ``jax.jit`` of a whole training step.

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, entropy_penalty
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> grad = jax.jit(jax.grad(lambda n: entropy_penalty(n, Partition.interleaved(8))))
        >>> grad(net).convs[0].shape
        (8, 2, 3)
    """
    _check_net(net)
    if kind not in _KINDS:
        raise ValueError(f"unknown entropy kind {kind!r}: use one of {_KINDS}")
    if classes == "each":
        raise ValueError(
            "entropy_penalty returns a scalar: use classes='mean', 'sum' or a class index"
        )
    if isinstance(partitions, str):
        if partitions != "edges":
            raise ValueError(f"unknown partitions={partitions!r}: the only name is 'edges'")
        ent = edge_entropies(net, kind=kind, alpha=alpha, classes=classes)
        total = sum(jnp.sum(e) for e in ent)
        return total / sum(e.size for e in ent)
    inner = "each" if classes == "mean" else classes
    parts = _as_partition_list(partitions)
    if kind == "renyi2":  # the partitions' residuals are held together: budget their sum
        plans = [renyi2_plan(net, p, classes=classes, max_bytes=max_bytes) for p in parts]
        total = sum(p.bytes for p in plans)
        if total > max_bytes:
            worst = max(range(len(plans)), key=lambda i: plans[i].bytes)
            raise ValueError(
                f"entropy_penalty over {len(plans)} partitions needs an estimated "
                f"{total / 1e9:.3g} GB with its gradient (the largest, "
                f"{getattr(parts[worst], 'name', worst)!r}, {plans[worst].bytes / 1e9:.3g} GB): "
                f"over max_bytes={max_bytes / 1e9:.3g} GB. Raise max_bytes, or use fewer "
                "partitions or ones that follow the tree"
            )
    sweep = up_sweep(net)  # shared by every partition
    values = []
    for i, part in enumerate(parts):
        if kind == "renyi2":
            v = renyi2(net, part, classes=classes, sweep=sweep, plan=plans[i])
        else:
            cut, _, _ = _cut_of(net, part, inner, max_rank)
            ga, gb = cut_grams(net, cut, inner, sweep[0])
            v = entropy_of(gram_pair_spectrum(ga, gb), kind, alpha)
        values.append(jnp.mean(v))
    return jnp.mean(jnp.stack(values))
