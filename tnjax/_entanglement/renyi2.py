"""Renyi-2 entropy of ANY bipartition, exact and polynomial, by the cheapest exact route.

Two routes, chosen per partition by a plan built outside jit from static metadata:

* **cut**: where the partition's min-cut rank ``chi`` is small (every tree edge, an
  aligned block, a half of a quad tree), cut the network there; with the two sides'
  ``chi x chi`` Gram matrices ``G_A, G_B``, ``Tr(rho_A^2) = Tr((G_A G_B)^2) / Tr(G_A G_B)^2``:
  matrix products only, no eigendecomposition.
* **four copies**: ``Tr(rho_A^2) = sum A[a,b] A[a',b] A[a',b'] A[a,b']``, contracted up
  the tree with a 4-index environment ``E[g1, g2, g3, g4]`` per node. A subtree wholly on
  side A has ``E = G[g1,g4] G[g2,g3]`` (copies 1-4 and 2-3 share the A indices), one
  wholly on side B ``E = G[g1,g2] G[g3,g4]``, with ``G`` its two-copy Gram matrix from the
  shared up-sweep: these stay ``r x r``. Only *mixed* nodes (inputs on both sides) carry
  an ``r^4`` tensor: pooling is an elementwise product, a conv four mode products, one
  at a time (``O(r^5)``). A mixed node whose children are all pure is a ring of four
  ``r x r`` matrices: its conv is done without forming ``E`` and, at the root, its trace
  against the class vectors is ``Tr(B~ A B~ A)`` (``O(r^3)``).

Every stage is normalised with its log-norm carried, and class vectors are scaled to
unit length (the entropy is scale free), so the result does not depend on the weights'
scale. Before anything is traced, the plan estimates FLOPs and peak bytes and refuses a
partition over ``max_bytes`` with both figures in the message; past a quarter of it
each level is rematerialised in the backward pass, in chunks of nodes.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from tnjax._core.network import TreeTN
from tnjax._core.partition import Partition, as_partition
from tnjax._core.tree import Tree
from tnjax._entanglement.cutspectrum import cut_grams
from tnjax._entanglement.mincut import min_cut
from tnjax._entanglement.sweep import _check_net, class_top, pair_renyi2, up_sweep

__all__ = ["Renyi2Plan", "renyi2", "renyi2_plan"]

#: default budget on the bytes a Renyi-2 computation (with its gradient) may hold
DEFAULT_MAX_BYTES = 4 * 2**30
#: default largest min-cut rank the cut route takes (it holds ``c chi^2`` numbers)
DEFAULT_MAX_CUT_RANK = 1024

_A, _B, _MIXED = 0, 1, 2
_ROUTES = ("auto", "cut", "four_copy")


@dataclasses.dataclass(frozen=True, eq=False)
class _Group:
    """Mixed parents of one pooling level treated as one batched operation."""

    children: np.ndarray  # (p, k) child node index at this level
    is_a: np.ndarray  # (p, k) child wholly on side A
    is_b: np.ndarray
    is_mixed: np.ndarray
    mixed_pos: np.ndarray  # (p, k) row of a mixed child in the level below's output
    parents: np.ndarray  # (p,) node index at the next level (its conv's weights)
    ring: bool  # no mixed child: E is a ring of four r x r matrices


@dataclasses.dataclass(frozen=True, eq=False)
class Renyi2Plan:
    """How :func:`renyi2` computes one partition (static; built by :func:`renyi2_plan`).

    Attributes:
        route: ``"product"`` (min-cut rank 1: exactly 0), ``"cut"`` or ``"four_copy"``.
        chi: the min-cut rank.
        mixed_nodes: nodes whose subtree has inputs on both sides.
        flops: estimated floating-point operations of the value and its gradient.
        bytes: estimated peak bytes of the value and its gradient.
        remat: four-copy levels recomputed in the backward pass (to fit ``max_bytes``).
    """

    route: str
    chi: int
    mixed_nodes: int
    flops: float
    bytes: float
    remat: bool = False
    cut: object = None
    levels: tuple = ()  # per pooling level: tuple of _Group chunks (empty: nothing mixed)
    key: tuple = ()  # what it was built for: tree, dims, classes, partition, dtype size

    def __repr__(self) -> str:
        return (
            f"Renyi2Plan(route={self.route!r}, chi={self.chi}, mixed_nodes={self.mixed_nodes}, "
            f"flops={self.flops:.3g}, bytes={self.bytes:.3g}, remat={self.remat})"
        )


def _fmt_bytes(b: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def _levels(tree: Tree, mask_leaf: tuple[bool, ...], dims, n_cls: int, chunk_bytes: float):
    """Mixed-node groups per pooling level, and the four-copy cost estimate."""
    types = np.where(np.asarray(mask_leaf), _A, _B)
    prev_pos = np.zeros(len(types), dtype=np.int64)  # row of each mixed node in the output
    levels, flops, stored, work, n_mixed = [], 0.0, 0.0, 0.0, 0
    depth = tree.depth
    for lvl, k in enumerate(tree.windows):
        kids = types.reshape(-1, k)
        parent_types = np.where(
            np.all(kids == _A, axis=1), _A, np.where(np.all(kids == _B, axis=1), _B, _MIXED)
        )
        parents = np.flatnonzero(parent_types == _MIXED)
        n_mixed += len(parents)
        r = dims[lvl + 1]  # bond entering the pooling
        r_out = dims[lvl + 2] if lvl + 1 < depth else None
        groups, pos, row = [], np.zeros(len(parent_types), dtype=np.int64), 0
        has_mixed_kid = np.any(kids[parents] == _MIXED, axis=1)
        for ring in (True, False):
            sel = parents[has_mixed_kid != ring]
            if not len(sel):
                continue
            if r_out is None:  # the root: a ring is traced in r^3, a full E in c r^4
                per = 8 * n_cls * r**3 if ring else 2 * n_cls * r**4 + k * r**4
                node_bytes = (2 * r * r if ring else 3 * r**4) * 1.0
            elif ring:
                per = 4 * r**3 * r_out + 4 * r * r * r_out**3 + 2 * r * r * r_out**2
                node_bytes = 3.0 * (r * r * r_out**2 + r_out**4)
            else:
                per = k * r**4 + 2 * (
                    r**4 * r_out + r**3 * r_out**2 + r**2 * r_out**3 + r * r_out**4
                )
                node_bytes = (
                    2.0 * r**4 + 3.0 * (r**3 * r_out + r**2 * r_out**2 + r * r_out**3) + r_out**4
                )
            flops += 3.0 * per * len(sel)  # value, then a backward of about twice that
            out_numbers = (r_out**4 if r_out is not None else 0) * 1.0
            stored += out_numbers * len(sel)
            work += node_bytes * len(sel)
            per_chunk = max(1, int(chunk_bytes // max(node_bytes, 1.0)))
            for start in range(0, len(sel), per_chunk):
                rows = sel[start : start + per_chunk]
                children = rows[:, None] * k + np.arange(k)[None, :]
                ctypes = types[children]
                mpos = np.where(ctypes == _MIXED, prev_pos[children], 0)
                groups.append(
                    _Group(children, ctypes == _A, ctypes == _B, ctypes == _MIXED, mpos, rows, ring)
                )
                pos[rows] = row + np.arange(len(rows))
                row += len(rows)
        levels.append(tuple(groups))
        types, prev_pos = parent_types, pos
    return tuple(levels), n_mixed, flops, stored, work


@functools.lru_cache(maxsize=1024)
def _plan_cached(
    tree: Tree,
    dims: tuple[int, ...],
    n_classes: int,
    partition: Partition,
    classes,
    itemsize: int,
    max_bytes: float,
    max_cut_rank: int,
    route: str,
) -> Renyi2Plan:
    cut = min_cut(tree, partition, dims=dims)
    summed = classes == "sum"
    n_cls = 1 if (summed or isinstance(classes, int)) else n_classes
    chi = cut.rank * (n_classes if summed and cut.out_side == "A" else 1)
    if cut.rank == 1 and route == "auto":
        # a product state for any weights: S_2 is exactly 0 (float rounding of
        # 2 log<A,A> - log Tr(rho^2) would only return noise)
        return Renyi2Plan("product", 1, 0, 0.0, 0.0, cut=cut)
    mask_leaf = tuple(partition.mask[i] for i in tree.order)
    levels, n_mixed, flops4, stored, work = _levels(tree, mask_leaf, dims, n_cls, max_bytes / 4)
    r_max = max(dims[1:])
    fchi = float(min(chi, 2**300))  # the rank can be astronomically large
    # the up-sweep (shared by both routes and by every partition) is left out of both
    cut_flops = 3.0 * 4.0 * n_cls * fchi**3
    cut_bytes = itemsize * (6.0 * n_cls * fchi * fchi + 4.0 * tree.n_inputs * r_max**2)
    four_bytes = itemsize * (work + 4.0 * tree.n_inputs * r_max**2)
    # the cut's side Grams are einsums over the cut's neighbourhood, slower per FLOP than
    # the four-copy's batched matmuls: take the cut when it is clearly the cheaper
    take_cut = route == "cut" or (
        route == "auto"
        and chi <= max_cut_rank
        and cut_bytes <= max_bytes
        and 2 * cut_flops < flops4
    )
    if take_cut:
        if cut_bytes > max_bytes:
            raise ValueError(
                f"renyi2 of partition {partition.name!r} along its min-cut (rank {fchi:.3g}) needs "
                f"about {_fmt_bytes(cut_bytes)}, over max_bytes={_fmt_bytes(max_bytes)}: raise "
                "max_bytes or use route='four_copy'"
            )
        return Renyi2Plan("cut", chi, n_mixed, cut_flops, cut_bytes, cut=cut)
    remat = False
    if four_bytes > max_bytes:
        # rematerialised: only each level's output is kept, plus one chunk at work
        four_bytes = itemsize * (
            stored + max_bytes / (4 * itemsize) + 4.0 * tree.n_inputs * r_max**2
        )
        flops4 *= 4 / 3
        remat = True
    if four_bytes > max_bytes:
        raise ValueError(
            f"renyi2 of partition {partition.name!r} needs an estimated {_fmt_bytes(four_bytes)} "
            f"and {flops4:.3g} FLOPs with its gradient ({n_mixed} mixed nodes carry r^4 "
            f"four-copy tensors, r up to {r_max}; min-cut rank {fchi:.3g}): over "
            f"max_bytes={_fmt_bytes(max_bytes)}. Raise max_bytes, or choose partitions that "
            "follow the tree (fewer mixed nodes)"
        )
    return Renyi2Plan("four_copy", chi, n_mixed, flops4, four_bytes, remat, cut, levels)


def renyi2_plan(
    net: TreeTN,
    partition,
    *,
    classes="mean",
    max_bytes: float = DEFAULT_MAX_BYTES,
    max_cut_rank: int = DEFAULT_MAX_CUT_RANK,
    route: str = "auto",
) -> Renyi2Plan:
    """The route, cost estimate and schedule :func:`renyi2` uses for ``partition``.

    Plain Python on static metadata (the tree, bond dimensions, dtype), cached: call it
    freely, inside or outside jit. Raises before anything is allocated when the estimate
    is over ``max_bytes``.

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, renyi2_plan
        >>> net = convac(key=jax.random.key(0), tree=Tree.quad(16), m=2, channels=8, n_classes=10)
        >>> renyi2_plan(net, Partition.block((16, 16), start=(0, 4), size=4)).route  # an edge
        'cut'
        >>> renyi2_plan(net, Partition.checkerboard((16, 16))).route
        'four_copy'
    """
    _check_net(net)
    partition = as_partition(partition, net.n_inputs, net.tree.shape)
    if route not in _ROUTES:
        raise ValueError(f"unknown route {route!r}: use one of {_ROUTES}")
    if not (isinstance(max_bytes, int | float) and max_bytes > 0):
        raise ValueError(f"max_bytes must be a positive number, got {max_bytes!r}")
    class_top(net, classes)  # validates classes
    key = "each" if classes == "mean" else classes
    plan = _plan_cached(
        net.tree,
        net.dims,
        net.n_classes,
        partition,
        key,
        jnp.dtype(net.dtype).itemsize,
        float(max_bytes),
        int(max_cut_rank),
        route,
    )
    return dataclasses.replace(plan, key=_plan_key(net, partition, classes))


def _plan_key(net: TreeTN, partition: Partition, classes) -> tuple:
    key = "each" if classes == "mean" else classes
    return (net.tree, net.dims, net.n_classes, partition.mask, key, jnp.dtype(net.dtype).itemsize)


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
    ``r^3`` tensors first, then two mode products on the leading axis (batched matmuls
    without transposes): half the work of four."""
    n = "" if shared else "p"
    t1 = jnp.einsum(f"{n}ae,pab,pad->pbde", w, fb, fa)  # (g2, g4, e1)
    t3 = jnp.einsum(f"{n}ce,pbc,pcd->pbde", w, fa, fb)  # (g2, g4, e3)
    x = t1[..., :, None] * t3[..., None, :]  # (g2, g4, e1, e3)
    spec = "pabcd,ae->pbcde" if shared else "pabcd,pae->pbcde"
    x = jnp.einsum(spec, x, w)  # (g4, e1, e3, e2)
    x = jnp.einsum(spec, x, w)  # (e1, e3, e2, e4)
    return jnp.swapaxes(x, 2, 3)


def _group_step(group: _Group, gc, lgc, w, e_prev, le_prev, shared: bool, root: bool):
    """One group of mixed parents: ``(E, log)`` after its conv, or at the root the
    ring ``(FA, FB)`` or the pooled ``E``."""
    one = jnp.ones((), gc.dtype)
    fa = jnp.prod(jnp.where(group.is_a[..., None, None], gc, one), axis=1)
    fb = jnp.prod(jnp.where(group.is_b[..., None, None], gc, one), axis=1)
    lnew = jnp.sum(jnp.where(group.is_a | group.is_b, 2.0 * lgc, 0.0), axis=1)
    # products of several normalised Grams are tiny (entries ~ r^(1-k)): E is quadratic
    # in each, so scale both to max 1 and carry twice their logs (else the ring's trace
    # and its cotangents leave float32's range)
    fa, la = _norm_max(fa)
    fb, lb = _norm_max(fb)
    lnew = lnew + 2.0 * (la + lb)
    if group.ring:
        if root:
            return (fa, fb), lnew
        new, dl = _norm_max(_conv4_ring(fa, fb, w, shared))
        return new, lnew + dl
    new = (
        fa[:, :, None, None, :]
        * fa[:, None, :, :, None]
        * fb[:, :, :, None, None]
        * fb[:, None, None, :, :]
    )
    for c in range(group.children.shape[1]):
        is_m = group.is_mixed[:, c]
        if not is_m.any():
            continue
        term = e_prev[group.mixed_pos[:, c]]
        lterm = le_prev[group.mixed_pos[:, c]]
        if not is_m.all():
            term = jnp.where(is_m[:, None, None, None, None], term, one)
            lterm = jnp.where(is_m, lterm, 0.0)
        new = new * term
        lnew = lnew + lterm
    new, dl = _norm_max(new)
    lnew = lnew + dl
    if root:
        return new, lnew
    new, dl = _norm_max(_conv4(new, w, shared))
    return new, lnew + dl


def _unit_vectors(vecs: Array, summed: bool) -> Array:
    """Class vectors scaled to unit length (each its own, or all by one factor when the
    classes are summed): the entropy is scale free, the traces then stay in range."""
    axes = (0, 1) if summed else (1,)
    s = jax.lax.stop_gradient(jnp.sqrt(jnp.sum(vecs * vecs, axis=axes, keepdims=True)))
    return vecs / jnp.where((s > 0) & jnp.isfinite(s), s, 1.0)


def _four_copy(net: TreeTN, plan: Renyi2Plan, classes, sweep) -> Array:
    grams, logs, root, root_log = sweep
    depth = net.tree.depth
    e = le = None
    for lvl, groups in enumerate(plan.levels):
        if not groups:
            e = le = None
            continue
        is_root = lvl + 1 == depth
        outs, louts = [], []
        for group in groups:
            gc = grams[lvl][group.children]  # (p, k, r, r)
            lgc = logs[lvl][group.children]
            w = None
            if not is_root:
                w = net.convs[lvl + 1] if net.shared else net.convs[lvl + 1][group.parents]
            step = functools.partial(_group_step, group, shared=net.shared, root=is_root)
            if plan.remat and not is_root:
                step = jax.checkpoint(step)
            out, lout = step(gc, lgc, w, e, le)
            outs.append(out)
            louts.append(lout)
        if is_root:
            (top,), (ltop,) = outs, louts  # the root is one node: one group
            break
        e = jnp.concatenate(outs) if len(outs) > 1 else outs[0]
        le = jnp.concatenate(louts) if len(louts) > 1 else louts[0]
    vecs, summed = class_top(net, classes)
    vecs = _unit_vectors(vecs, summed)
    ring = isinstance(top, tuple)
    if summed:
        k = vecs.T @ vecs
        norm = jnp.einsum("ab,ab->", k, root)[None]
        if ring:
            fa, fb = top[0][0], top[1][0] * k
            q = jnp.sum((fb @ fa) * (fb @ fa).T)[None]
        else:
            q = jnp.einsum("abcd,ab,cd->", top[0], k, k)[None]
    else:
        norm = jnp.einsum("ya,ab,yb->y", vecs, root, vecs)
        if ring:  # Tr(B~ FA B~ FA) with B~ = diag(v) FB diag(v)
            fa, fb = top[0][0], top[1][0]
            bt = vecs[:, :, None] * fb[None] * vecs[:, None, :]
            p = jnp.einsum("yab,bc->yac", bt, fa)
            q = jnp.sum(p * jnp.swapaxes(p, -1, -2), axis=(-2, -1))
        else:
            q = jnp.einsum("abcd,ya,yb,yc,yd->y", top[0], vecs, vecs, vecs, vecs)
    # S_2 = 2 log<A,A> - log(Tr(rho^2) <A,A>^2), in logs: q and norm are in normalised
    # units whose logs (the root's and the top's) are carried apart
    ok = norm > 0
    tiny = jnp.finfo(q.dtype).tiny
    s2 = 2.0 * jnp.log(jnp.where(ok, norm, 1.0)) - jnp.log(jnp.where(q > tiny, q, tiny))
    s2 = s2 - (ltop[0] - 2.0 * root_log)
    finite = jnp.isfinite(norm) & jnp.isfinite(q)
    return jnp.where(ok, jnp.maximum(s2, 0.0), jnp.where(finite, 0.0, jnp.nan))


def renyi2(
    net: TreeTN,
    partition,
    *,
    classes="mean",
    max_bytes: float = DEFAULT_MAX_BYTES,
    max_cut_rank: int = DEFAULT_MAX_CUT_RANK,
    route: str = "auto",
    sweep=None,
    plan: Renyi2Plan | None = None,
) -> Float[Array, "..."]:
    """Renyi-2 entanglement entropy ``-log Tr(rho_A^2)`` of any bipartition, exact.

    The route is the cheapest exact one (:func:`renyi2_plan`): along the min-cut when its
    rank is small (matrix products of ``chi x chi`` Gram matrices), else the four-copy
    contraction, ``O(N r^3)`` for the subtrees on one side and ``O(r^5)`` time and
    ``O(r^4)`` memory per *mixed* node. No dense tensor and no eigendecomposition, so
    gradients are plain autodiff; the value does not depend on the weights' scale.

    Args:
        net: the network.
        partition: a :class:`Partition` (or a boolean mask over the inputs, True = side A).
        classes: ``"mean"`` (each class's entropy, averaged: a scalar), ``"each"``
            (``(Y,)``), a class index (``(1,)``), or ``"sum"`` (``(1,)``: the class index
            on side B, i.e. the entropy of ``sum_y rho_y / sum_y Tr rho_y``).
        max_bytes: budget on the estimated peak memory of the value and its gradient;
            a partition over it is refused before anything is allocated.
        max_cut_rank: largest min-cut rank the cut route takes.
        route: ``"auto"`` (default), ``"cut"`` or ``"four_copy"``.
        sweep: the up-sweep ``tnjax._entanglement.sweep.up_sweep(net)`` to reuse (shared
            between the partitions of a penalty).
        plan: a :func:`renyi2_plan` of this network's structure, partition and
            ``classes`` to run (``max_bytes``, ``max_cut_rank`` and ``route`` are then
            those it was built with).

    Returns:
        The entropy in nats (non-negative). A class whose coefficient tensor is zero has
        entropy 0; a NaN or inf weight gives NaN.

    Raises:
        ValueError: if the estimate is over ``max_bytes`` (the message gives it).

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, renyi2
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> renyi2(net, Partition.interleaved(8)).shape
        ()
    """
    _check_net(net)
    partition = as_partition(partition, net.n_inputs, net.tree.shape)
    mean = classes == "mean"
    inner = "each" if mean else classes
    if plan is None:
        plan = renyi2_plan(net, partition, classes=classes, max_bytes=max_bytes,
                           max_cut_rank=max_cut_rank, route=route)  # fmt: skip
    elif plan.key != _plan_key(net, partition, classes):
        raise ValueError(
            "the plan was built for another network structure, partition or classes: build "
            "it with renyi2_plan(net, partition, classes=...) for this call"
        )
    if plan.route == "product":
        shape = (net.n_classes,) if inner == "each" else (1,)
        s2 = jnp.zeros(shape, net.dtype)
    elif plan.route == "cut":
        ga, gb = cut_grams(net, plan.cut, inner, None if sweep is None else sweep[0])
        s2 = pair_renyi2(ga, gb)
    else:
        s2 = _four_copy(net, plan, inner, up_sweep(net) if sweep is None else sweep)
    # S_2 <= log(Schmidt rank) <= log(min-cut rank): where rounding leaves a class's
    # entropy undetermined (its tensor far below the others'), it stays within the bound
    s2 = jnp.minimum(s2, math.log(min(plan.chi, 2**1000)))
    return jnp.mean(s2) if mean else s2
