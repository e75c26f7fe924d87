"""Renyi-2 entropy of ANY bipartition, exact and polynomial (ENTANGLEMENT.md, 3).

``Tr(rho_A^2) = sum A[a,b] A[a',b] A[a',b'] A[a,b']``: four copies of the network,
contracted level by level with a 4-index environment ``E[g1, g2, g3, g4]`` per node.
A subtree whose inputs all lie on side A has ``E = G[g1,g4] G[g2,g3]`` (copies 1-4 and
2-3 share the A indices), one all on side B ``E = G[g1,g2] G[g3,g4]``, with ``G`` the
two-copy Gram matrix of the subtree: these stay factored (r x r). Only *mixed* nodes
carry the full ``r^4`` tensor: pooling is an elementwise product, a conv four mode
products (``O(r^5)``). No dense tensor, no SVD: clean gradients. Every level is one
batched operation over its mixed nodes, normalised with log-norms kept.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from tnjax._mincut import min_cut
from tnjax._network import TreeTN
from tnjax._partition import Partition, as_partition
from tnjax._sweep import _check_net, class_top, up_sweep
from tnjax._tree import Tree

__all__ = ["renyi2"]

_A, _B, _MIXED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class _Pool:
    """Static plan of one pooling level: the mixed parents and their children."""

    children: np.ndarray  # (n_parents, k) child node index at this level
    is_a: np.ndarray  # (n_parents, k) child entirely on side A
    is_b: np.ndarray
    is_mixed: np.ndarray
    mixed_pos: np.ndarray  # (n_parents, k) index of the child among this level's mixed nodes
    parents: np.ndarray  # (n_parents,) index of each mixed parent at the next level


@functools.lru_cache(maxsize=256)
def _plan(tree: Tree, mask_leaf: tuple[bool, ...]) -> tuple[_Pool, ...]:
    types = np.where(np.asarray(mask_leaf), _A, _B)
    plan = []
    for k in tree.windows:
        mixed = np.flatnonzero(types == _MIXED)
        kids = types.reshape(-1, k)
        parent_types = np.where(
            np.all(kids == _A, axis=1), _A, np.where(np.all(kids == _B, axis=1), _B, _MIXED)
        )
        parents = np.flatnonzero(parent_types == _MIXED)
        children = parents[:, None] * k + np.arange(k)[None, :]
        ctypes = types[children]
        pos = np.searchsorted(mixed, children)
        pos = np.where(ctypes == _MIXED, np.minimum(pos, max(len(mixed) - 1, 0)), 0)
        plan.append(_Pool(children, ctypes == _A, ctypes == _B, ctypes == _MIXED, pos, parents))
        types = parent_types
    return tuple(plan)


def _norm_max(e: Array) -> tuple[Array, Array]:
    axes = tuple(range(1, e.ndim))
    s = jax.lax.stop_gradient(jnp.max(jnp.abs(e), axis=axes))
    s = jnp.where(s > jnp.finfo(e.dtype).tiny, s, 1.0)
    return e / s.reshape((-1,) + (1,) * (e.ndim - 1)), jnp.log(s)


def _conv4(e: Array, w: Array, shared: bool) -> Array:
    """Multiply each of the four modes of ``e`` (n, r, r, r, r) by ``w``: after four
    cyclic steps (contract the first mode, append the new one last) the order is back."""
    spec = "nabcd,ae->nbcde" if shared else "nabcd,nae->nbcde"
    for _ in range(4):
        e = jnp.einsum(spec, e, w)
    return e


def _conv4_ring(fa: Array, fb: Array, w: Array, shared: bool) -> Array:
    """The conv of ``E[g1,g2,g3,g4] = FA[g1,g4] FA[g2,g3] FB[g1,g2] FB[g3,g4]`` (a node
    whose children are all pure) without forming ``E``: sum ``g1`` and ``g3`` into two
    ``r^3`` tensors first, then two mode products: half the work of four."""
    n = "" if shared else "p"
    t1 = jnp.einsum(f"{n}ae,pab,pad->pebd", w, fb, fa)  # (e1, g2, g4)
    t3 = jnp.einsum(f"{n}ce,pbc,pcd->pebd", w, fa, fb)  # (e3, g2, g4)
    x = t1[:, :, None] * t3[:, None]  # (e1, e3, g2, g4)
    x = jnp.einsum(f"pxybd,{n}bf->pxyfd", x, w)
    x = jnp.einsum(f"pxyfd,{n}dh->pxyfh", x, w)  # (e1, e3, e2, e4)
    return jnp.swapaxes(x, 2, 3)


def _log_tr_rho2(net: TreeTN, partition: Partition, classes) -> tuple[Array, Array]:
    """``(log Tr(rho_A^2), log <A, A>)``, one per class choice."""
    mask_leaf = tuple(partition.mask[i] for i in net.tree.order)
    plan = _plan(net.tree, mask_leaf)
    grams, logs, root, root_log = up_sweep(net)
    e = le = None  # environments of the mixed nodes after this level's conv
    for lvl, pool in enumerate(plan):
        if len(pool.parents) == 0:
            e = le = None
            continue
        gc = grams[lvl][pool.children]  # (p, k, r, r)
        lgc = logs[lvl][pool.children]
        one = jnp.ones((), gc.dtype)
        fa = jnp.prod(jnp.where(pool.is_a[..., None, None], gc, one), axis=1)
        fb = jnp.prod(jnp.where(pool.is_b[..., None, None], gc, one), axis=1)
        lnew = jnp.sum(jnp.where(pool.is_a | pool.is_b, 2.0 * lgc, 0.0), axis=1)
        has_conv = lvl + 1 < net.tree.depth
        if has_conv:
            w = net.convs[lvl + 1]
            w = w if net.shared else w[pool.parents]
        if has_conv and not pool.is_mixed.any():
            # every child is pure: E is a ring of four r x r matrices; conv it directly
            new = _conv4_ring(fa, fb, w, net.shared)
            new, dl = _norm_max(new)
            e, le = new, lnew + dl
            continue
        new = (
            fa[:, :, None, None, :]
            * fa[:, None, :, :, None]
            * fb[:, :, :, None, None]
            * fb[:, None, None, :, :]
        )
        for c in range(pool.children.shape[1]):
            is_m = pool.is_mixed[:, c]
            if not is_m.any():
                continue
            term = e[pool.mixed_pos[:, c]]
            lterm = le[pool.mixed_pos[:, c]]
            if not is_m.all():
                term = jnp.where(is_m[:, None, None, None, None], term, one)
                lterm = jnp.where(is_m, lterm, 0.0)
            new = new * term
            lnew = lnew + lterm
        new, dl = _norm_max(new)
        lnew = lnew + dl
        if has_conv:
            new, dl = _norm_max(_conv4(new, w, net.shared))
            lnew = lnew + dl
        e, le = new, lnew
    vecs, summed = class_top(net, classes)
    root_e = e[0]
    tiny = jnp.finfo(root_e.dtype).tiny
    if summed:
        k = vecs.T @ vecs
        q = jnp.einsum("abcd,ab,cd->", root_e, k, k)[None]
        norm = jnp.einsum("ab,ab->", k, root)[None]
    else:
        q = jnp.einsum("abcd,ya,yb,yc,yd->y", root_e, vecs, vecs, vecs, vecs)
        norm = jnp.einsum("ya,ab,yb->y", vecs, root, vecs)
    log_q = le[0] + jnp.log(jnp.maximum(q, tiny))
    log_norm = root_log + jnp.log(jnp.maximum(norm, tiny))
    return log_q, log_norm


def renyi2(net: TreeTN, partition, *, classes="mean") -> Float[Array, "..."]:
    """Renyi-2 entanglement entropy ``-log Tr(rho_A^2)`` of any bipartition, exact.

    Cost: ``O(N r^3)`` for the subtrees on one side, ``O(r^5)`` time and ``O(r^4)``
    memory per *mixed* node (a node whose subtree has inputs on both sides). No dense
    tensor and no SVD, so gradients are plain autodiff.

    Args:
        net: the network.
        partition: a :class:`Partition` (or a boolean mask over the inputs, True = side A).
        classes: ``"mean"`` (each class's entropy, averaged: a scalar), ``"each"``
            (``(Y,)``), a class index (``(1,)``), or ``"sum"`` (``(1,)``: the class index
            on side B, i.e. the entropy of ``sum_y rho_y / sum_y Tr rho_y``).

    Returns:
        The entropy in nats.

    Precision: the result is a difference of two logs, each carried to the working
    precision. For a class whose scores nearly cancel (``|h_y|`` far below
    ``|out_y| |u|``) float32 leaves few correct digits: compute such diagnostics on
    ``net.astype(jnp.float64)`` (with ``jax_enable_x64``). Partitions whose min-cut rank is
    1 return exactly 0.

    Example:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, renyi2
        >>> net = convac(jax.random.key(0), Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> renyi2(net, Partition.interleaved(8)).shape
        ()
    """
    _check_net(net)
    partition = as_partition(partition, net.n_inputs)
    mean = classes == "mean"
    if min_cut(net, partition).rank == 1:
        # a product state for every choice of weights: S_2 is exactly 0 (and computing
        # it as 2 log<A,A> - log Tr(rho^2) would only return float rounding, which in
        # float32 is large when a class's scores nearly cancel)
        shape = () if mean else ((net.n_classes,) if classes == "each" else (1,))
        return jnp.zeros(shape, net.dtype)
    log_q, log_norm = _log_tr_rho2(net, partition, "each" if mean else classes)
    s2 = 2.0 * log_norm - log_q
    return jnp.mean(s2) if mean else s2
