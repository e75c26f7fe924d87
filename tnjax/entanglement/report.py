"""Entanglement report of a trained network: min-cut bounds and entropies of standard
partitions, as data (rows of numbers), with optional min-cut drawings."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from tnjax.core.network import TreeTN
from tnjax.core.partition import Partition
from tnjax.entanglement.cutspectrum import entanglement_entropy
from tnjax.entanglement.mincut import min_cut
from tnjax.entanglement.renyi2 import renyi2

__all__ = ["entanglement_report", "format_report", "renyi2_cost", "standard_partitions"]

PARTITION_NAMES = ("left_right", "top_bottom", "checkerboard", "block", "interleaved")


def standard_partitions(shape, names=None) -> list[Partition]:
    """Named partitions of an input layout: ``left_right``, ``top_bottom``,
    ``checkerboard``, ``block`` (the central block of half the side), ``interleaved``.
    Default: all that apply (the 2D ones need an image layout).

    Example:
        >>> from tnjax import standard_partitions
        >>> [p.name for p in standard_partitions((8, 8), ["left_right", "block"])]
        ['left/right', 'central block']
    """
    shape = tuple(int(s) for s in shape)
    two_d = len(shape) == 2
    if names is None:
        names = PARTITION_NAMES[:4] if two_d else ("left_right", "interleaved", "block")
    out = []
    for name in names:
        if name not in PARTITION_NAMES:
            raise ValueError(f"unknown partition {name!r}: use some of {PARTITION_NAMES}")
        if name in ("top_bottom", "checkerboard") and not two_d:
            raise ValueError(f"partition {name!r} needs an image layout (h, w), got {shape}")
        if name == "left_right":
            out.append(Partition.left_right(shape))
        elif name == "top_bottom":
            out.append(Partition.top_bottom(shape))
        elif name == "checkerboard":
            out.append(Partition.checkerboard(shape))
        elif name == "interleaved":
            out.append(Partition.interleaved(shape))
        else:
            start = tuple(s // 4 for s in shape)
            size = tuple(max(1, s // 2) for s in shape)
            p = Partition.block(shape, start=start, size=size)
            out.append(Partition(p.mask, p.shape, "central block"))
    return out


def renyi2_cost(net: TreeTN, partition: Partition) -> int:
    """Largest number of entries the four-copy Renyi-2 sweep holds at one level: each
    node whose subtree has inputs on both sides ("mixed") carries ``r**4`` numbers.

    Example:
        >>> from tnjax import Partition, Tree, convac, renyi2_cost
        >>> import jax
        >>> net = convac(jax.random.key(0), Tree.binary(8), m=2, channels=3, n_classes=2)
        >>> renyi2_cost(net, Partition.left_right(8))  # only the root is mixed
        81
    """
    mask = partition.mask
    worst = 0
    for lvl in range(1, net.tree.depth + 1):
        r = net.dims[lvl]
        mixed = 0
        for node in range(net.tree.level_sizes[lvl]):
            sides = {mask[i] for i in net.tree.inputs_under(lvl, node)}
            mixed += len(sides) == 2
        worst = max(worst, mixed * r**4)
    return worst


def entanglement_report(
    net: TreeTN,
    partitions=None,
    *,
    max_renyi2_entries: int = 2**28,
    max_rank: int = 1024,
    max_bytes: float = 2 * 2**30,
    progress: bool = True,
) -> list[dict]:
    """Min-cut bound (bits) and entropies (bits) of each partition of ``net``'s inputs,
    as rows of numbers (:func:`format_report` prints them; :func:`tnjax.plot_cut` draws a
    row's cut).

    Entropies are of the coefficient tensor of each class, averaged over classes.
    ``renyi2`` is skipped (``None``, with a ``renyi2_bits_error`` saying why) where its
    sweep would hold more than ``max_renyi2_entries`` numbers at one level (see
    :func:`renyi2_cost`) or its plan over ``max_bytes`` (:func:`tnjax.renyi2_plan`); the von
    Neumann entropy where the min-cut rank is over ``max_rank`` (the spectrum costs
    ``rank^3``). Each row records the seconds it took; a progress bar shows the
    partitions done (on a terminal).

    Example:
        >>> import jax
        >>> from tnjax import Tree, convac, entanglement_report
        >>> net = convac(jax.random.key(0), Tree.quad(4), m=2, channels=2, n_classes=2)
        >>> entanglement_report(net)[0]["min_cut_bits"]
        1.0
    """
    if not isinstance(net, TreeTN):
        raise TypeError(f"net must be a tnjax.TreeTN (model.network), got {type(net).__name__}")
    parts = standard_partitions(net.tree.shape) if partitions is None else list(partitions)
    fns = {"renyi2_bits": renyi2, "entropy_bits": entanglement_entropy}
    rows = []
    bar = tqdm(parts, desc="entanglement report", leave=False,
               disable=not progress or not sys.stderr.isatty())  # fmt: skip
    for p in bar:
        t_row = time.perf_counter()
        cut = min_cut(net, p)
        row = {"partition": p.name, "min_cut_bits": float(cut.log2_rank), "min_cut_rank": cut.rank}
        for col, f in fns.items():
            if col == "renyi2_bits":
                cost = renyi2_cost(net, p)
                if cost > max_renyi2_entries:
                    row[col] = None
                    row[col + "_error"] = (
                        f"the Renyi-2 sweep would hold {cost:.3g} numbers at one level, over "
                        f"max_renyi2_entries={max_renyi2_entries:.3g}"
                    )
                    continue
            kw = {"max_bytes": max_bytes} if col == "renyi2_bits" else {"max_rank": max_rank}
            try:
                val = np.asarray(f(net, p, **kw), dtype=np.float64)
            except ValueError as e:  # e.g. a budget the function refuses
                row[col] = None
                row[col + "_error"] = str(e)
                continue
            row[col] = float(np.mean(val)) / math.log(2)
        row["seconds"] = time.perf_counter() - t_row
        rows.append(row)
    return rows


def format_report(rows: list[dict]) -> str:
    """A plain-text table of :func:`entanglement_report` rows."""
    cols = [c for c in ("renyi2_bits", "entropy_bits") if any(c in r for r in rows)]
    head = f"{'partition':<16}{'min-cut bound (bits)':>22}" + "".join(f"{c:>16}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['partition']:<16}{r['min_cut_bits']:>22.2f}"
        for c in cols:
            v = r.get(c)
            line += f"{'n/a':>16}" if v is None else f"{v:>16.4f}"
        lines.append(line)
    return "\n".join(lines)
