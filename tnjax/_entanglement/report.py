"""Entanglement report of a trained network: min-cut bounds and entropies of standard
partitions, as data (rows of numbers), with optional min-cut drawings."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from tnjax._core.network import TreeTN
from tnjax._core.partition import Partition
from tnjax._entanglement.cutspectrum import entanglement_entropy
from tnjax._entanglement.mincut import min_cut
from tnjax._entanglement.renyi2 import renyi2, renyi2_plan

__all__ = ["entanglement_report", "format_report", "standard_partitions"]

PARTITION_NAMES = ("left_right", "top_bottom", "checkerboard", "block", "interleaved")


def standard_partitions(shape, names=None) -> list[Partition]:
    """Named partitions of an input layout: ``left_right``, ``top_bottom``,
    ``checkerboard``, ``block`` (the central block of half the side), ``interleaved``.
    Default: all that apply (the 2D ones need an image layout).

    Examples:
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


def entanglement_report(
    net: TreeTN,
    partitions=None,
    *,
    max_flops: float = 1e12,
    max_rank: int = 1024,
    max_bytes: float = 2 * 2**30,
    progress: bool = True,
) -> list[dict]:
    """Min-cut bound (bits) and entropies (bits) of each partition of ``net``'s inputs,
    as rows of numbers (:func:`format_report` prints them; :func:`tnjax.plot_cut` draws a
    row's cut).

    Entropies are of the coefficient tensor of each class, averaged over classes. Each
    row carries the Renyi-2 plan's estimates (``renyi2_route``, ``renyi2_flops``,
    ``renyi2_bytes``, from :func:`tnjax.renyi2_plan`) and is skipped (``None``, with a
    ``renyi2_bits_error`` saying why) over ``max_flops`` or ``max_bytes``; the von
    Neumann entropy is skipped where the min-cut rank is over ``max_rank`` (its spectrum
    costs ``rank^3``). Raise a budget to compute what was skipped. Each row records the
    seconds it took; a progress bar shows the partitions done (on a terminal).

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac, entanglement_report
        >>> net = convac(key=jax.random.key(0), tree=Tree.quad(4), m=2, channels=2, n_classes=2)
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
            kw = {"max_rank": max_rank}
            if col == "renyi2_bits":
                try:
                    plan = renyi2_plan(net, p, max_bytes=max_bytes)
                except ValueError as e:  # over max_bytes: the message has the estimate
                    row[col], row[col + "_error"] = None, str(e)
                    continue
                row.update(renyi2_route=plan.route, renyi2_flops=plan.flops,
                           renyi2_bytes=plan.bytes)  # fmt: skip
                if plan.flops > max_flops:
                    row[col] = None
                    row[col + "_error"] = (
                        f"Renyi-2 of {p.name!r} needs an estimated {plan.flops:.3g} FLOPs, over "
                        f"max_flops={max_flops:.3g}: raise max_flops to compute it"
                    )
                    continue
                kw = {"plan": plan}
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
