"""Batched, log-scaled contraction of a tree network, and its dense coefficient tensor."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from tnjax._contraction.kernels import (
    ContractionPlan,
    _child_major,
    _pool,
    _runtime_one,
    contraction_plan,
    conv_pool,
)
from tnjax._core.network import TreeTN

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
    """(batch, N, c) in input order -> (N, batch, c) in leaf order."""
    x = jnp.swapaxes(features, 0, 1)
    order = net.tree.order
    if order != tuple(range(len(order))):
        x = x[np.asarray(order)]
    return x.astype(net.dtype)


def contract(
    net: TreeTN,
    features: Float[Array, "batch n m"],
    *,
    scaled: bool = True,
    plan: ContractionPlan | None = None,
) -> Scores:
    """Class scores of a batch: per tree level, one fused conv-and-pool operation over all
    its nodes (see :func:`conv_pool`).

    Args:
        net: the network.
        features: represented inputs ``phi``, shape ``(batch, n_inputs, M)``, inputs in
            the user's layout (row-major pixels for images).
        scaled: scale every input vector to ``max|x| = 1`` and normalise pooled vectors
            every few levels, carrying the logs of the scales, so that the scores
            neither overflow nor underflow whatever the inputs' magnitudes (exact: the
            network is multilinear in every vector). The normalisations cost no
            backward pass of their own: the derivative holds them constant, which leaves
            the Jacobian of ``(log_scale, scores)`` exact (see the comment in the code).
            With ``scaled=False``, ``log_scale`` is zero.
        plan: the kernel per level and the node layout (default:
            :func:`tnjax.contraction_plan` for this network, batch and platform). The
            result does not depend on it beyond float rounding.

    Returns:
        :class:`Scores` with ``h = exp(log_scale) * scores``. A float16 or bfloat16
        network is contracted in float32 (its weights as stored, upcast), and the scores
        are float32: in half precision the pooled vectors' norms and the log-scales
        lose the scores from about a thousand inputs on.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from tnjax import Tree, convac, contract
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=(3, 3), n_classes=5)
        >>> contract(net, jnp.ones((7, 4, 2))).scores.shape
        (7, 5)
    """
    check_features(net, features)
    if jnp.dtype(net.dtype).itemsize < 4:
        net = net.astype(jnp.float32)
        features = features.astype(jnp.float32)
    if plan is None:
        plan = contraction_plan(net, features.shape[0])
    elif len(plan.kernels) != net.tree.depth:
        raise ValueError(
            f"the plan has {len(plan.kernels)} levels but the network {net.tree.depth}: "
            "build it with tnjax.contraction_plan(net, batch)"
        )
    x = _leaves(net, features)  # (nodes, batch, channels) in leaf order
    windows = net.tree.windows
    depth = len(windows)
    inv = None  # pending scale of each node's conv output, (nodes, batch, 1)
    # per node, the log of the scales taken out of its subtree, pooled with the vectors:
    # the root's entry is the log-scale (elementwise work that fuses, not a sum per level)
    logs = None
    if scaled:
        # every input vector scaled to max |x| = 1 (a max, not a norm: no squares, so
        # any finite input is in range), computed on the features as given (no
        # transpose); held constant in the derivative, exactly as the normalisations
        # below (the first normalised level absorbs any change of these scales)
        inv, log_norm = jax.lax.stop_gradient(_inv_max(features.astype(x.dtype)))
        inv = _leaves(net, inv)  # (nodes, batch, 1), leaf order, like x
        logs = _leaves(net, log_norm[..., None])[..., 0]
    normalize = _normalize_plan(windows) if scaled else (False,) * depth
    by_child = plan.child_major  # nodes child-major (_child_major)
    if by_child:
        # the inputs are reordered once (no derivative is taken through them in
        # training), the weights at every level (a transposed copy, small next to x)
        x = _child_major(x, windows)
        if scaled:
            inv, logs = _child_major(inv, windows), _child_major(logs, windows)
        # each call's reordered weights are its own (times a 1 computed from its
        # features): two contractions in one program would otherwise share the weight
        # broadcasts of the reduce kernel, which XLA then writes out instead of fusing.
        # A non-finite feature gives 1 too, so one bad sample cannot reach the others.
        first = jax.lax.stop_gradient(features[0, 0, 0])
        tie = _runtime_one(jnp.where(jnp.isfinite(first), first, 0))
    for lvl, k in enumerate(windows):
        w = net.convs[lvl]
        if by_child and w.ndim == 3:
            w = _child_major(w * tie.astype(w.dtype), windows[lvl:])
        # the conv is linear: scaling its input is scaling its output, a multiply that
        # fuses into the pooling product
        x = conv_pool(x, w, k, scale=inv, by_child=by_child, kernel=plan.kernels[lvl])
        inv = None
        if scaled:  # a window's scales are its children's, multiplied
            logs = _pool(logs, k, by_child, op=jnp.add)
        if normalize[lvl]:  # (never when not scaled)
            inv, log_norm = _inv_norm(x)
            if lvl < depth - 1:
                # Exact, and cheaper: the scores are homogeneous of degree 0 and the
                # log-scale of degree 1 (in log) in every vector below the root
                # normalisation, so a normalisation's own derivative cancels against
                # its log-norm's. Holding both constant leaves the Jacobian of
                # (log_scale, scores) unchanged and the backward pass multilinear.
                inv, log_norm = jax.lax.stop_gradient((inv, log_norm))
            logs = logs + log_norm
    root = x[0] if inv is None else x[0] * inv[0]
    log_scale = logs[0] if scaled else jnp.zeros(x.shape[1], x.dtype)
    return Scores(log_scale, root @ net.out)


def _normalize_plan(windows: tuple[int, ...]) -> tuple[bool, ...]:
    """Which levels normalise their pooled vectors (a static plan from the windows).

    Every input vector is first scaled to largest entry 1. A level normalises once the
    vectors it pools hold at least 4 leaves' worth of products since the last
    normalisation, and the root level always does. Between two normalisations a vector
    is then a product of at most ``4 k`` conv outputs of unit-scale vectors (``k`` the
    largest window), whose magnitudes stay far inside the float32 range for any sane
    weights; every normalisation is exact (its log is carried in ``log_scale``). Binary
    trees normalise every other level.
    """
    plan, held = [], 1
    for lvl, k in enumerate(windows):
        held *= k
        plan.append(held >= 4 or lvl == len(windows) - 1)
        held = 1 if plan[-1] else held
    return tuple(plan)


def _inv_max(x: Array) -> tuple[Array, Array]:
    """``1/max|x|`` over the last axis (keepdims) and ``log max|x|``; no squares, so any
    finite input is in range. A zero vector gets 1 and 0."""
    mx = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    ok = mx > jnp.finfo(x.dtype).tiny
    mx = jnp.where(ok, mx, 1.0)
    return 1.0 / mx, jnp.log(mx[..., 0])


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

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac, to_dense
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=(2, 2), n_classes=3)
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
