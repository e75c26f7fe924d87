"""Partition families of a 64x64 image and what a network can / does entangle across them.

* local partitions: small square blocks (side 2, 4, 8) against the rest, aligned with the
  quad tree's windows and shifted off them;
* global partitions: left/right, top/bottom, checkerboard, interleaved columns.

:func:`capacity` gives min-cut bounds (bits; need no training, only the channel list);
:func:`entropies` the Renyi-2 entropies (nats) of a trained network, skipping partitions
whose four-copy contraction would need more than ``budget`` floats (wide mixed nodes:
``O(r^4)`` memory each); :func:`block_profile` the entropy of square blocks as they grow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tnjax._core.partition import Partition
from tnjax._core.tree import Tree
from tnjax._entanglement.mincut import min_cut
from tnjax._entanglement.renyi2 import renyi2
from tnjax._entanglement.sweep import edge_entropies

__all__ = [
    "block_partitions",
    "capacity",
    "entropies",
    "global_partitions",
    "level_entropies",
    "local_partitions",
    "mixed_node_floats",
]


def local_partitions(canvas: int = 64) -> list[Partition]:
    """Square blocks of side 2, 4 and 8 at an aligned corner (tree edges) and shifted by
    one pixel (cutting the tree's windows), near the image centre."""
    shape = (canvas, canvas)
    c = canvas // 2 - 8
    parts = []
    for s in (2, 4, 8):
        for off, tag in ((0, "aligned"), (1, "shifted")):
            p = Partition.block(shape, start=(c + off, c + off), size=s)
            parts.append(Partition(p.mask, shape, f"block {s}x{s} {tag}"))
    return parts


def global_partitions(canvas: int = 64) -> list[Partition]:
    """Left/right, top/bottom, checkerboard and interleaved (even / odd columns)."""
    shape = (canvas, canvas)
    return [
        Partition.left_right(shape),
        Partition.top_bottom(shape),
        Partition.checkerboard(shape),
        Partition.interleaved(shape),
    ]


def block_partitions(
    sizes: Sequence[int], *, canvas: int = 64, start: int | None = None
) -> list[Partition]:
    """One square block of each side in ``sizes``, its top-left corner at ``(start, start)``
    (default: ``canvas // 4``), against the rest."""
    start = canvas // 4 if start is None else start
    out = []
    for s in sizes:
        p = Partition.block((canvas, canvas), start=(start, start), size=s)
        out.append(Partition(p.mask, (canvas, canvas), f"block {s}x{s}"))
    return out


def capacity(tree: Tree, dims: Sequence[int], partitions: Sequence[Partition]) -> dict:
    """``{partition name: min-cut log2 rank}`` for a tree and ``dims = (M, r_0, ...)``."""
    return {p.name: float(min_cut(tree, p, dims=tuple(dims)).log2_rank) for p in partitions}


def mixed_node_floats(tree: Tree, dims: Sequence[int], partition: Partition) -> int:
    """Floats held by the mixed nodes of :func:`tnjax.renyi2` for this partition: a node
    whose subtree has inputs on both sides carries an ``r^4`` environment."""
    mask = np.asarray(partition.mask)[np.asarray(tree.order)]  # leaf order
    total, span = 0, 1
    for lvl, k in enumerate(tree.windows):
        span *= k
        blocks = mask.reshape(-1, span)
        mixed = int(np.sum(blocks.any(axis=1) & ~blocks.all(axis=1)))
        r_in = dims[lvl + 1]
        r_out = dims[lvl + 2] if lvl + 2 < len(dims) else r_in
        total += mixed * (r_in**4 + r_out**4)
    return total


#: floats that :func:`entropies` lets renyi2's mixed nodes hold (float64: 2.4 GB; the
#: widest computed in benchmarks/, an r=12 wide-base 8x8 shifted block at 2.2e8 floats,
#: took 17 s and 2.7 GB peak on 2 CPU cores)
RENYI_BUDGET = 3e8


def entropies(net, partitions: Sequence[Partition], *, budget: float = RENYI_BUDGET) -> dict:
    """``{name: Renyi-2 entropy (nats, class mean)}``, computed in float64; ``None`` where
    the four-copy contraction would hold more than ``budget`` floats.

    float64 on purpose: in float32, ``tnjax.renyi2`` of trained 64x64 networks can be
    off by tens of nats (``Tr rho^2`` against ``<A,A>^2`` for classes with tiny norms:
    e.g. 68 nats across a partition whose min-cut bound is 0)."""
    out = {}
    with jax.enable_x64(True):
        net64 = net.astype(jnp.float64)
        for p in partitions:
            if mixed_node_floats(net.tree, net.dims, p) > budget:
                out[p.name] = None
            else:
                out[p.name] = float(renyi2(net64, p))
    return out


def level_entropies(net, *, kind: str = "von_neumann") -> list[float]:
    """Mean entropy of the tree edges of each level: level ``l`` edges cut out an aligned
    ``2^l x 2^l`` block (quad tree), so this is the entropy of aligned blocks of side
    ``1, 2, 4, ..., 32``. Computed in float64."""
    with jax.enable_x64(True):
        ent = edge_entropies(net.astype(jnp.float64), kind=kind)
        return [float(np.mean(np.asarray(e))) for e in ent]


def log2_or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x) / math.log(2)
