"""Batched, log-scaled contraction of a tree network, and its dense coefficient tensor."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from tnjax._network import TreeTN

__all__ = ["Scores", "check_features", "contract", "n_flops", "to_dense"]


class Scores(NamedTuple):
    """Class scores as ``h = exp(log_scale)[:, None] * scores``.

    Product pooling over many inputs leaves the float range; the per-sample
    ``log_scale`` carries the magnitude and ``scores`` stay of order one.
    """

    log_scale: Float[Array, " batch"]
    scores: Float[Array, "batch y"]

    def value(self) -> Float[Array, "batch y"]:
        """The raw scores ``h`` (may over/underflow for many inputs)."""
        return jnp.exp(self.log_scale)[:, None] * self.scores

    def log_abs(self) -> Float[Array, "batch y"]:
        """``log|h_y|``: finite wherever ``h_y != 0`` however many inputs."""
        return self.log_scale[:, None] + jnp.log(jnp.abs(self.scores))


def check_features(net: TreeTN, features) -> None:
    """Raise a clear error if ``features`` is not ``(batch, n_inputs, M)``."""
    shape = getattr(features, "shape", None)
    if shape is None:
        raise TypeError(f"features must be an array, got {type(features).__name__}")
    want = (net.n_inputs, net.m)
    if len(shape) != 3 or tuple(shape[1:]) != want:
        raise ValueError(
            f"features have shape {tuple(shape)}; this network takes (batch, {want[0]}, {want[1]}) "
            f"= (batch, n_inputs, M). Add a batch axis for one sample (features[None])"
        )
    if not jnp.issubdtype(features.dtype, jnp.floating):
        raise TypeError(f"features must be floating point, got {features.dtype}")


def _leaves(net: TreeTN, features: Array) -> Array:
    """(batch, N, M) in input order -> (N, batch, M) in leaf order."""
    x = jnp.swapaxes(features, 0, 1)
    order = net.tree.order
    if order != tuple(range(len(order))):
        x = x[np.asarray(order)]
    return x.astype(net.dtype)


def contract(net: TreeTN, features: Float[Array, "batch n m"], *, scaled: bool = True) -> Scores:
    """Class scores of a batch: one batched matmul and one pooling per tree level.

    Args:
        net: the network.
        features: represented inputs ``phi``, shape ``(batch, n_inputs, M)``, inputs in
            the user's layout (row-major pixels for images).
        scaled: normalise pooled vectors and carry the log of their norms, so that the
            scores neither overflow nor underflow (exact: the network is multilinear in
            every pooled vector). With ``scaled=False``, ``log_scale`` is zero.

    Returns:
        :class:`Scores` with ``h = exp(log_scale) * scores``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from tnjax import Tree, convac, contract
        >>> net = convac(jax.random.key(0), Tree.binary(4), m=2, channels=(3, 3), n_classes=5)
        >>> contract(net, jnp.ones((7, 4, 2))).scores.shape
        (7, 5)
    """
    check_features(net, features)
    x = _leaves(net, features)  # (nodes, batch, channels) in leaf order
    windows = net.tree.windows
    plan = _normalize_plan(windows) if scaled else (False,) * len(windows)
    log_scale = jnp.zeros(x.shape[1], dtype=x.dtype)
    inv = None  # pending 1/norm of each pooled vector, (nodes, batch, 1)
    for lvl, k in enumerate(windows):
        w = net.convs[lvl]
        v = jnp.matmul(x, w) if net.shared else jnp.einsum("nbm,nmr->nbr", x, w)
        if inv is not None:
            # the conv is linear: scaling its output is scaling its input; this
            # multiply fuses into the pooling product
            v = v * inv
        x = _pool(v, k)
        inv = None
        if plan[lvl]:
            inv, log_norm = _inv_norm(x)
            log_scale = log_scale + jnp.sum(log_norm, axis=0)
    root = x[0] if inv is None else x[0] * inv[0]
    return Scores(log_scale, root @ net.out)


def _pool(v: Array, k: int) -> Array:
    """Product over consecutive windows of ``k`` nodes: (n, b, r) -> (n / k, b, r)."""
    n, b, r = v.shape
    v = v.reshape(n // k, k, b, r)
    if k > 8:  # wide windows (shallow / CP networks): one reduction
        return jnp.prod(v, axis=1)
    # a chain of multiplies: vectorises better than a reduction over the window axis,
    # and its gradient is a concatenation rather than a generic product rule
    parts = jax.lax.split(v, (1,) * k, axis=1)
    return functools.reduce(jnp.multiply, parts)[:, 0]


def _normalize_plan(windows: tuple[int, ...]) -> tuple[bool, ...]:
    """Which levels normalise their pooled vectors (a static plan from the windows).

    The first and last levels always do. A level of window 2 whose input was normalised
    and whose parent level also pools pairs may skip it: between two normalisations the
    magnitudes then grow at most like ``|W|^6`` (three convs, two pairwise products), far
    inside the float range for any sane weights, and every normalisation is exact anyway
    (its log is carried in ``log_scale``). This halves the normalisations of binary trees.
    """
    depth = len(windows)
    plan = []
    for lvl, k in enumerate(windows):
        skip = 0 < lvl < depth - 1 and plan[lvl - 1] and k == 2 and windows[lvl + 1] == 2
        plan.append(not skip)
    return tuple(plan)


def _inv_norm(x: Array) -> tuple[Array, Array]:
    """``1/||x||`` over the last axis (keepdims) and ``log||x||``; a zero vector gets 1 and 0."""
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    ok = sq > jnp.finfo(x.dtype).tiny
    inv = jax.lax.rsqrt(jnp.where(ok, sq, 1.0))
    return inv, -jnp.log(inv[..., 0])


def to_dense(net: TreeTN, *, max_size: int = 2**24) -> Float[Array, "y ..."]:
    """The coefficient tensor ``A[y, d_1, ..., d_N]`` (``h_y`` with each input replaced by
    the basis vector ``e_{d_i}``), axes in input order. For small networks: the oracle.

    Raises:
        ValueError: if ``Y * M**N`` exceeds ``max_size``.

    Example:
        >>> import jax
        >>> from tnjax import Tree, convac, to_dense
        >>> net = convac(jax.random.key(0), Tree.binary(4), m=2, channels=(2, 2), n_classes=3)
        >>> to_dense(net).shape
        (3, 2, 2, 2, 2)
    """
    size = net.n_classes * net.m**net.n_inputs
    if size > max_size:
        raise ValueError(
            f"the dense tensor has {net.n_classes} x {net.m}^{net.n_inputs} = {size:.3g} entries, "
            f"over max_size={max_size:.3g}: raise max_size, or use the entanglement routines, "
            "which never build it"
        )
    t = None  # (nodes, D, r): open input indices of each subtree flattened into D
    for lvl, k in enumerate(net.tree.windows):
        w = net.level_weights(lvl)
        t = w if t is None else jnp.einsum("ndr,nrs->nds", t, w)
        n, d, r = t.shape
        t = t.reshape(n // k, k, d, r)
        acc = t[:, 0]
        for c in range(1, k):
            acc = (acc[:, :, None, :] * t[:, c][:, None, :, :]).reshape(n // k, -1, r)
        t = acc
    a = t[0] @ net.out  # (M^N, Y), leaf order
    a = a.reshape((net.m,) * net.n_inputs + (net.n_classes,))
    perm = (net.n_inputs, *net.tree.leaf_position)
    return jnp.transpose(a, perm)


def n_flops(net: TreeTN, batch: int) -> int:
    """Floating point operations of one forward pass on ``batch`` samples (convs,
    pooling products, output layer)."""
    flops = 0
    for lvl in range(net.tree.depth):
        n = net.tree.level_sizes[lvl]
        flops += 2 * n * batch * net.dims[lvl] * net.dims[lvl + 1]
        flops += n * batch * net.dims[lvl + 1]  # products
    flops += 2 * batch * net.dims[-1] * net.n_classes
    return flops
