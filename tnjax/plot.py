"""Figures: the min-cut drawn on the tree, learning curves.

Each function draws into the axes it is given (from ``plt.subplots()`` or any figure)
and returns them; without axes it makes a ``matplotlib.figure.Figure`` of its own.
Nothing here touches pyplot's state or the caller's backend, so the functions work in
scripts, servers and notebooks alike; saving a figure is the caller's
(``ax.figure.savefig(path)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from tnjax._core.network import TreeTN
from tnjax._core.partition import Partition, as_partition
from tnjax._core.tree import Tree
from tnjax._entanglement.mincut import MinCut, _cut, _tree_and_dims

__all__ = ["plot_cut", "plot_learning_curve"]


def _layout(tree: Tree) -> dict[tuple, tuple[float, float]]:
    """x: centre of the node's leaves; y: inputs 0, then W and delta rows per level."""
    pos: dict[tuple, tuple[float, float]] = {}
    n = tree.n_inputs
    for p in range(n):
        pos[("input", p)] = (float(p), 0.0)
    for lvl, k in enumerate(tree.windows):
        span = n // tree.level_sizes[lvl]
        for p in range(tree.level_sizes[lvl]):
            pos[("W", lvl, p)] = (p * span + (span - 1) / 2, 2.0 * lvl + 1)
        span *= k
        for j in range(tree.level_sizes[lvl + 1]):
            pos[("delta", lvl, j)] = (j * span + (span - 1) / 2, 2.0 * lvl + 2)
    pos[("out",)] = ((n - 1) / 2, 2.0 * tree.depth + 1)
    return pos


def plot_cut(
    net_or_tree: TreeTN | Tree,
    partition: Partition | np.ndarray,
    cut: MinCut | None = None,
    *,
    dims: Sequence[int] | None = None,
    ax=None,
):
    """Draw the tree (inputs at the bottom coloured by side, W squares and delta circles
    per level, the output on top) with the min-cut bonds in red and the bound in the title.

    Args:
        net_or_tree: a network, or a :class:`Tree` with ``dims``.
        partition: the input partition.
        cut: a precomputed :func:`min_cut` (computed if omitted).
        dims: ``(M, r_0, ..., r_{L-1})`` for a bare tree.
        ax: a matplotlib axes to draw into (a new figure if omitted).

    Returns:
        The axes drawn into.

    Examples:
        >>> from tnjax import Partition, Tree, plot_cut
        >>> ax = plot_cut(Tree.binary(8), Partition.interleaved(8), dims=(2, 2, 2, 2))
        >>> ax.get_title().split(" = ")[0]
        'interleaved: Schmidt rank <= 16'

    """
    tree, dims = _tree_and_dims(net_or_tree, dims)
    partition = as_partition(partition, tree.n_inputs, tree.shape)
    if cut is None:
        cut = _cut(tree, dims, partition, "tree")
    elif cut.tree != tree or cut.dims != dims or cut.partition.mask != partition.mask:
        raise ValueError("cut was computed for another tree, dims or partition: recompute it")
    n = tree.n_inputs
    if ax is None:
        fig = Figure(figsize=(min(max(6.0, 0.28 * n + 2), 22), 1.3 * tree.depth + 2.5))
        ax = fig.subplots()
    pos = _layout(tree)
    colors = {"A": "tab:blue", "B": "tab:orange", "cut": "red"}
    cut_edges = {b.ends(tree) for b in cut.bonds if b.kind != "delta"}
    small = n > 24

    def line(u, v):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        is_cut = (u, v) in cut_edges
        ax.plot(
            [x0, x1],
            [y0, y1],
            color="red" if is_cut else "0.6",
            lw=2.6 if is_cut else 0.8,
            zorder=3 if is_cut else 1,
        )

    for p in range(n):
        line(("input", p), ("W", 0, p))
    for lvl, k in enumerate(tree.windows):
        for c in range(tree.level_sizes[lvl]):
            line(("W", lvl, c), ("delta", lvl, c // k))
        for j in range(tree.level_sizes[lvl + 1]):
            upper = ("out",) if lvl == tree.depth - 1 else ("W", lvl + 1, j)
            line(("delta", lvl, j), upper)

    ms = 4 if small else 7
    for p, i in enumerate(tree.order):
        x, y = pos[("input", p)]
        ax.plot(x, y, "o", ms=ms + 1, color=colors["A" if partition.mask[i] else "B"], zorder=4)
        if n <= 64:
            ax.text(x, y - 0.45, str(i), ha="center", va="top", fontsize=6 if small else 8)
    for lvl, sides in enumerate(cut.w_side):
        for p, s in enumerate(sides):
            x, y = pos[("W", lvl, p)]
            ax.plot(x, y, "s", ms=ms, mfc="white", mec=colors[s], mew=1.5, zorder=4)
    for lvl, sides in enumerate(cut.delta_side):
        for j, s in enumerate(sides):
            x, y = pos[("delta", lvl, j)]
            face = "red" if s == "cut" else "white"
            ax.plot(x, y, "o", ms=ms, mfc=face, mec=colors[s], mew=1.5, zorder=4)
    x, y = pos[("out",)]
    ax.plot(x, y, "D", ms=ms + 1, mfc="white", mec=colors[cut.out_side], mew=1.5, zorder=4)
    ax.set_yticks([2.0 * lvl + 1 for lvl in range(tree.depth)] + [2.0 * tree.depth + 1])
    ax.set_yticklabels([f"W{lvl} (r={dims[lvl + 1]})" for lvl in range(tree.depth)] + ["out"])
    ax.set_xticks([])
    ax.set_xlim(-1, n)
    ax.set_ylim(-1.2, 2.0 * tree.depth + 1.8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(
        f"{partition.name}: Schmidt rank <= {cut.rank} = 2^{cut.log2_rank:.3g} "
        f"({len(cut.bonds)} cut bond{'s' if len(cut.bonds) != 1 else ''}, dims {dims})",
        fontsize=10,
    )
    if len(tree.shape) == 2:  # the partition as an image, in a corner
        inset = ax.inset_axes((0.0, 0.72, 0.12, 0.28))
        inset.imshow(~partition.as_array(), cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        inset.set_xticks([])
        inset.set_yticks([])
    return ax


def plot_learning_curve(history: Sequence[dict], *, axes=None):
    """Loss and accuracy per epoch (train, and validation when present), and the
    regularizer's value when one was used: two or three panels.

    Args:
        history: ``FitResult.history`` (or ``metrics.json``'s ``history``).
        axes: two axes (three when the history has a penalty) to draw into.

    Returns:
        The axes drawn into.

    Examples:
        >>> from tnjax import plot_learning_curve
        >>> h = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "reg": 0.3},
        ...      {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "reg": 0.2}]
        >>> [a.get_title() for a in plot_learning_curve(h)]
        ['loss', 'accuracy', 'regularizer']
    """
    ep = [h["epoch"] for h in history]
    has_reg = any("reg" in h for h in history)
    if axes is None:
        fig = Figure(figsize=(13.5 if has_reg else 9, 3.5), layout="tight")
        axes = fig.subplots(1, 3 if has_reg else 2)
    if len(axes) != 2 + has_reg:
        raise ValueError(f"give {2 + has_reg} axes for this history, got {len(axes)}")
    a1, a2 = axes[0], axes[1]
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a2.plot(ep, [h["train_accuracy"] for h in history], "o-", label="train")
    if "val_loss" in history[0]:
        a1.plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
        a2.plot(ep, [h["val_accuracy"] for h in history], "s-", label="validation")
    a1.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    a2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    if has_reg:
        a3 = axes[2]
        a3.plot(ep, [h.get("reg", float("nan")) for h in history], "o-", color="tab:purple",
                label="penalty")  # fmt: skip
        a3.set(xlabel="epoch", ylabel="entropy (nats)", title="regularizer")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend()
    return axes
