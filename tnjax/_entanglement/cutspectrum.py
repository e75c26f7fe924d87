"""Full Schmidt spectrum of ANY bipartition, exact, when its min-cut is small
(ENTANGLEMENT.md, 4).

Cut the network along a minimum cut (:func:`tnjax.min_cut`, product of cut bond
dimensions ``chi``). Each side, contracted with a second copy of itself over its inputs,
is a ``chi x chi`` Gram matrix (``L^T L`` and ``R^T R`` for ``A = L R^T``); the squared
Schmidt values are the eigenvalues of ``G_A^{1/2} G_B G_A^{1/2}``: ``O(chi^3)``.

Each side's double-layer network is contracted by one ``einsum`` (copy tensors are
hyper-indices; the contraction order is planned by opt_einsum at trace time). Subtrees
that lie wholly on one side with no cut inside enter as their two-copy Gram matrices
from the (normalised) up-sweep, so the einsum only holds the nodes near the cut. The
rest is computed in the network's dtype without rescaling: for partitions whose cut
winds through many levels of a large network prefer float64, or :func:`tnjax.renyi2`,
which has no rank budget.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from tnjax._core.network import TreeTN
from tnjax._core.partition import as_partition
from tnjax._entanglement.mincut import MinCut, min_cut
from tnjax._entanglement.spectral import entropy_of, gram_pair_spectrum
from tnjax._entanglement.sweep import _check_net, class_top, up_sweep

__all__ = ["entanglement_entropy", "schmidt_spectrum"]


def _rank_text(chi: int) -> str:
    if chi > 1 and chi & (chi - 1) == 0:
        return f"2**{chi.bit_length() - 1}"
    return f"{chi:,}" if chi < 10**12 else f"{chi:.3g}"


class _Sym:
    """Integer index symbols for jnp.einsum's interleaved form."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n - 1


@functools.lru_cache(maxsize=256)
def _plan(cut: MinCut, m: int, n_classes: int, summed: bool):
    """Per side: operand specs ``(what, ket_indices, bra_indices)`` and the output
    indices; plus the list of cut index dimensions. ``what`` names a tensor:
    ``("W", l, p)``, ``("G", l, p)`` (the two-copy Gram of a pure subtree), ``("out",)``
    or ``("eye", dim)``."""
    tree, dims = cut.tree, cut.dims
    sym = _Sym()
    ops = {"A": [], "B": []}
    cuts: list[tuple[tuple, int, int, int]] = []  # (key, dim, ket, bra)

    def add_cut(key, dim):
        ket, bra = sym(), sym()
        cuts.append((key, dim, ket, bra))
        return ket, bra

    # hyper-index of each delta (ket, bra): the value on all its legs
    hyper = {}
    for lvl in range(tree.depth):
        for j in range(tree.level_sizes[lvl + 1]):
            if cut.delta_side[lvl][j] == "cut":
                hyper[lvl, j] = add_cut(("delta", lvl, j), dims[lvl + 1])
            else:
                hyper[lvl, j] = (sym(), sym())

    def leg(lvl, j, side, key):
        """Indices a tensor on ``side`` uses for a leg of delta (lvl, j)."""
        dside = cut.delta_side[lvl][j]
        hk, hb = hyper[lvl, j]
        if dside in ("cut", side):
            return hk, hb
        ket, bra = add_cut(key, dims[lvl + 1])  # the leg itself is cut
        ops[dside].append((("eye", dims[lvl + 1]), (hk, ket), (hb, bra)))
        return ket, bra

    # pure[l][p]: the subtree of W(l, p) (W included) lies on one side with no cut in it;
    # in the double layer it is the subtree's two-copy Gram from the up-sweep
    pure = []
    for lvl in range(tree.depth):
        row = []
        for p in range(tree.level_sizes[lvl]):
            side = cut.w_side[lvl][p]
            if lvl == 0:
                ok = side == ("A" if cut.partition.mask[tree.order[p]] else "B")
            else:
                k_prev = tree.windows[lvl - 1]
                kids = range(p * k_prev, (p + 1) * k_prev)
                ok = cut.delta_side[lvl - 1][p] == side and all(
                    pure[lvl - 1][c] and cut.w_side[lvl - 1][c] == side for c in kids
                )
            row.append(ok)
        pure.append(row)

    for lvl in range(tree.depth):
        k = tree.windows[lvl]
        for p in range(tree.level_sizes[lvl]):
            j = p // k
            if pure[lvl][p] and lvl + 1 < tree.depth and pure[lvl + 1][j]:
                continue  # inside a larger pure subtree
            side = cut.w_side[lvl][p]
            out_k, out_b = leg(lvl, j, side, ("conv", lvl, p))
            if pure[lvl][p]:
                ops[side].append((("G", lvl, p), (out_k, out_b), ()))
                continue
            if lvl == 0:
                t_side = "A" if cut.partition.mask[tree.order[p]] else "B"
                if t_side == side:
                    in_k = in_b = sym()  # physical index: ket and bra share it
                else:
                    in_k, in_b = add_cut(("input", p), m)
                    ops[t_side].append((("eye", m), (in_k, in_b), ()))
            else:
                in_k, in_b = leg(lvl - 1, p, side, ("up", lvl - 1, p))
            ops[side].append((("W", lvl, p), (in_k, out_k), (in_b, out_b)))
    # the output vector(s)
    side = cut.out_side
    top_k, top_b = leg(tree.depth - 1, 0, side, ("up", tree.depth - 1, 0))
    batch_side, y = None, sym()
    if not summed:
        batch_side = side
        ops[side].append((("out",), (top_k, y), (top_b, y)))
    elif side == "B":
        ops[side].append((("out",), (top_k, y), (top_b, y)))
    else:  # class index (a physical leg on side B) cut
        yk, yb = add_cut(("classes",), n_classes)
        ops["B"].append((("eye", n_classes), (yk, yb), ()))
        ops[side].append((("out",), (top_k, yk), (top_b, yb)))
    cuts.sort(key=lambda c: c[0])
    outs = {}
    for s in ("A", "B"):
        lead = (y,) if batch_side == s else ()
        outs[s] = lead + tuple(c[2] for c in cuts) + tuple(c[3] for c in cuts)
    return ops, outs, tuple(c[1] for c in cuts), batch_side


def _side_gram(net: TreeTN, ops, out_indices, dtype, grams) -> Array:
    args = []
    for what, ket, bra in ops:
        if what[0] == "G":  # a pure subtree: its two-copy Gram (ket, bra)
            args += [grams[what[1]][what[2]], list(ket)]
            continue
        if what[0] == "eye":  # copy tensor(s) joining two indices
            eye = jnp.eye(what[1], dtype=dtype)
            args += [eye, list(ket)] + ([eye, list(bra)] if bra else [])
            continue
        if what[0] == "W":
            w = net.convs[what[1]] if net.shared else net.convs[what[1]][what[2]]
        else:
            w = net.out
        args += [w, list(ket), w, list(bra)]
    args.append(list(out_indices))
    return jnp.einsum(*args, optimize="auto")


def _scale_free(net: TreeTN, summed: bool) -> TreeTN:
    """Every conv matrix divided by its largest entry, and each class vector by its own
    (all classes by one factor where they are summed): the spectra are unchanged, and
    products of many small or large weights no longer under- or overflow."""

    def unit(x, axes):
        s = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axes, keepdims=True))
        return x / jnp.where((s > 0) & jnp.isfinite(s), s, 1.0)

    convs = tuple(unit(c, (-2, -1)) for c in net.convs)
    out = unit(net.out, (0, 1) if summed else (0,))
    return TreeTN.tree_unflatten((net.tree, net.shared), (convs, out))


def cut_grams(net: TreeTN, cut: MinCut, classes, sub_grams=None) -> tuple[Array, Array]:
    """The two sides' ``chi x chi`` Gram matrices across ``cut`` (trace-normalised, with
    a leading class axis on at least one of them), ready for :func:`gram_pair_spectrum`.

    ``sub_grams``: the normalised up-sweep Gram matrices (shared between partitions)."""
    _, summed = class_top(net, classes)
    ops, outs, cut_dims, batch_side = _plan(cut, net.m, net.n_classes, summed)
    chi = math.prod(cut_dims)
    if sub_grams is None:
        sub_grams = up_sweep(net)[0]  # normalised: the spectrum is scale free
    unit = _scale_free(net, summed)
    grams = {}
    for s in ("A", "B"):
        g = _side_gram(unit, ops[s], outs[s], net.dtype, sub_grams)
        g = g.reshape(g.shape[: g.ndim - 2 * len(cut_dims)] + (chi, chi))
        t = jax.lax.stop_gradient(jnp.trace(g, axis1=-2, axis2=-1))
        grams[s] = g / jnp.where(t > 0, t, 1.0)[..., None, None]
    ga, gb = grams["A"], grams["B"]
    if not summed and isinstance(classes, int):
        ga = ga[classes : classes + 1] if batch_side == "A" else ga
        gb = gb[classes : classes + 1] if batch_side == "B" else gb
    if ga.ndim == 2 and gb.ndim == 2:
        ga = ga[None]
    return ga, gb


def _cut_of(net: TreeTN, partition, classes, max_rank: int):
    partition = as_partition(partition, net.n_inputs, net.tree.shape)
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive int, got {max_rank!r}")
    _, summed = class_top(net, classes)
    cut = min_cut(net, partition)
    chi = cut.rank
    if summed and cut.out_side == "A":
        chi *= net.n_classes
    if chi > max_rank:
        raise ValueError(
            f"min-cut rank {_rank_text(chi)} is over max_rank={max_rank}: use renyi2 or raise "
            f"max_rank (the spectrum costs chi^2 memory and chi^3 time)"
        )
    return cut, summed, chi


def schmidt_spectrum(
    net: TreeTN, partition, *, classes="each", max_rank: int = 4096
) -> Float[Array, "c chi"]:
    """Normalised squared Schmidt values of any bipartition (descending, summing to 1).

    Exact: cuts the network along a min-cut of rank ``chi`` and diagonalises a pair of
    ``chi x chi`` Gram matrices. The spectrum has ``chi`` entries (zeros past the true
    Schmidt rank). Gradients are safe (custom eigenvalue JVP).

    Args:
        net: the network.
        partition: a :class:`Partition` or boolean mask (True = side A).
        classes: ``"each"`` (one spectrum per class), a class index, or ``"sum"`` (the
            class index on side B: the spectrum of ``sum_y rho_y``).
        max_rank: budget on ``chi``; the call refuses larger cuts.

    Raises:
        ValueError: if the min-cut rank is over ``max_rank`` (the message names it).

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, schmidt_spectrum
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=2, n_classes=3)
        >>> schmidt_spectrum(net, Partition.left_right(8)).shape
        (3, 2)
    """
    _check_net(net)
    if classes == "mean":
        raise ValueError(
            "classes='mean' averages entropies, not spectra: use classes='each' here, or "
            "entanglement_entropy(net, partition, classes='mean')"
        )
    cut, _, _ = _cut_of(net, partition, classes, max_rank)
    ga, gb = cut_grams(net, cut, classes)
    lam = jnp.maximum(gram_pair_spectrum(ga, gb), 0.0)
    tot = jnp.sum(lam, axis=-1, keepdims=True)
    return lam / jnp.where(tot > 0, tot, 1.0)


def entanglement_entropy(
    net: TreeTN,
    partition,
    *,
    kind: str = "von_neumann",
    alpha: float | None = None,
    classes="mean",
    max_rank: int = 4096,
) -> Float[Array, "..."]:
    """Entanglement entropy of any bipartition from its full Schmidt spectrum
    (:func:`schmidt_spectrum`), differentiable.

    Args:
        net: the network.
        partition: a :class:`Partition` or boolean mask (True = side A).
        kind: ``"von_neumann"``, ``"renyi2"``, ``"renyi"`` (with ``alpha``) or
            ``"geometric"``.
        alpha: Renyi order for ``kind="renyi"``.
        classes: ``"mean"`` (each class's entropy averaged: a scalar), ``"each"``
            (``(Y,)``), a class index or ``"sum"`` (``(1,)``).
        max_rank: budget on the min-cut rank ``chi``.

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, entanglement_entropy
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=2, n_classes=3)
        >>> jax.jit(entanglement_entropy, static_argnums=1)(net, Partition.left_right(8)).shape
        ()
    """
    mean = classes == "mean"
    lam = schmidt_spectrum(net, partition, classes="each" if mean else classes, max_rank=max_rank)
    ent = entropy_of(lam, kind, alpha)
    return jnp.mean(ent) if mean else ent
