"""Min-cut bounds on the Schmidt rank of any input partition of a tree network.

The coefficient tensor ``A^y[d_1..d_N]`` of one class ``y`` is a tensor network whose
nodes are (``L`` levels, ``k_l = tree.windows[l]``, ``dims = (M, r_0, ..., r_{L-1})``):

* ``("input", p)``: the open leg of the input at leaf position ``p`` (input
  ``tree.order[p]``), a terminal tied to the source if that input is on side A of the
  partition, to the sink otherwise;
* ``("W", l, p)``: the conv matrix of level ``l`` at node ``p`` (``dims[l] x dims[l+1]``);
* ``("delta", l, j)``: the copy (delta) tensor of pooling window ``j`` of level ``l``,
  ``k_l + 1`` legs of dimension ``r_l = dims[l+1]``;
* ``("out",)``: the output vector ``a_y`` (``r_{L-1}``), attached to the last delta.

Its bonds (:class:`Bond`, capacity ``log2(dim)``):

* ``Bond("input", 0, p)``: input ``p`` -- ``W(0, p)``, dimension ``M``;
* ``Bond("conv", l, p)``: ``W(l, p)`` -- ``delta(l, p // k_l)``, dimension ``r_l``;
* ``Bond("up", l, j)``: ``delta(l, j)`` -- ``W(l+1, j)`` (or -- ``out`` at the top level
  ``l = L-1``), dimension ``r_l``;
* ``Bond("delta", l, j)``: not a leg but the copy tensor itself, dimension ``r_l``. A copy
  tensor has rank ``r_l`` across ANY split of its legs, so a cut through it counts
  ``log2 r_l`` once however many of its legs fall on each side (Levine et al. 2018,
  App. C). In the flow graph the delta is an in-node and an out-node joined by one arc of
  capacity ``log2 r_l`` (a vertex capacity). With windows of 2 this equals cutting a leg.

Cutting the network along the bonds of a :class:`MinCut` leaves two parts: side A holds
every input of side A, every ``W(l, p)`` with ``w_side[l][p] == "A"``, every delta with
``delta_side[l][j] == "A"`` and the output if ``out_side == "A"``; side B the rest
(``side_a_nodes`` / ``side_b_nodes`` list them as the labels above). A delta with
``delta_side[l][j] == "cut"`` is split in two copy tensors, one holding its legs toward
A-side neighbours, the other its legs toward B-side neighbours, joined by a new bond of
dimension ``r_l`` (a copy tensor is two smaller copy tensors contracted over one index);
no leg of a cut delta is itself cut. Every cut bond is thus an open index of each side:
contracting side A over its inputs (and the class vector, wherever it falls) gives a
matrix ``L[inputs of A, cut bonds]``, side B one ``R[inputs of B, cut bonds]``, and
``A^y[side A; side B] = L @ R.T``. So its rank, the Schmidt rank of the partition, is at
most ``MinCut.rank``, the product of the cut bond dimensions (Claim 1 of Levine et al.),
and every entropy is at most ``log(rank)``. The Gram matrices ``L.T @ L`` and ``R.T @ R``
(``rank x rank``) carry the whole Schmidt spectrum (ENTANGLEMENT.md, method 4). The class
index is fixed (``a_y`` is a vector): the bound holds for each class.

Two methods compute the cut. The default, ``method="tree"``, uses that the network
without its terminals is a tree: a bottom-up dynamic programme over the side of every
node (A, B, or "cut" for a copy tensor) minimises the product of the cut dimensions in
exact integer arithmetic, in ``O(N)``. ``method="maxflow"`` runs networkx's max-flow on
the vertex-split graph above (source tied to the inputs of side A, sink to side B); it
is the independent check. That max-flow runs on integer capacities
``round(log2(dim) * 2**40)`` (networkx is exact on integers), so its cut is minimal up to
ties closer than ``~1e-9`` in ``log2``; both methods compute ``rank`` exactly as a Python
int from the cut's bonds, always a valid upper bound. Ties between cuts of equal rank
are broken differently by the two methods.

The graph of each ``(tree, dims)`` and the cut of each ``(tree, dims, partition)`` are
cached: topology work is plain Python, planned once, outside jit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import networkx as nx
import numpy as np

from tnjax._core.network import TreeTN
from tnjax._core.partition import Partition, as_partition
from tnjax._core.tree import Tree

__all__ = ["Bond", "MinCut", "min_cut", "min_cut_bound"]

_SCALE = 2**40  # log2 capacities -> integers
_KINDS = ("input", "conv", "delta", "up")


@dataclasses.dataclass(frozen=True, order=True)
class Bond:
    """One bond of the tree network (or one copy tensor, for ``kind == "delta"``).

    Attributes:
        kind: ``"input"`` (input at leaf position ``index`` -- ``W(0, index)``, dim ``M``),
            ``"conv"`` (``W(level, index)`` -- its window's delta, dim ``r_level``),
            ``"delta"`` (the copy tensor of window ``index`` of ``level``, dim
            ``r_level``) or ``"up"`` (``delta(level, index)`` -- ``W(level+1, index)``, or
            -- the output at the top level, dim ``r_level``).
        level: pooling level ``l`` (0 for inputs).
        index: leaf position (``"input"``), node (``"conv"``) or window (``"delta"``,
            ``"up"``) within the level.
        dim: bond dimension.

    Examples:
        >>> from tnjax import Bond
        >>> Bond("conv", 1, 0, 3).label
        'conv(1,0):3'
    """

    kind: str
    level: int
    index: int
    dim: int

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown bond kind {self.kind!r}: use one of {_KINDS}")

    @property
    def label(self) -> str:
        return f"{self.kind}({self.level},{self.index}):{self.dim}"

    def ends(self, tree: Tree) -> tuple[tuple, tuple]:
        """The node labels the bond joins, lower then upper (``("input", p)``,
        ``("W", l, p)``, ``("delta", l, j)``, ``("out",)``); a ``"delta"`` bond gives its
        copy tensor twice."""
        lvl, i = self.level, self.index
        if self.kind == "input":
            return ("input", i), ("W", 0, i)
        if self.kind == "conv":
            return ("W", lvl, i), ("delta", lvl, i // tree.windows[lvl])
        if self.kind == "delta":
            return ("delta", lvl, i), ("delta", lvl, i)
        upper = ("out",) if lvl == tree.depth - 1 else ("W", lvl + 1, i)
        return ("delta", lvl, i), upper


@dataclasses.dataclass(frozen=True)
class MinCut:
    """A minimum cut of a tree network between the two sides of an input partition.

    Attributes:
        tree: the topology.
        dims: ``(M, r_0, ..., r_{L-1})``.
        partition: the input partition (side A = ``partition.side_a``).
        bonds: the cut bonds, sorted (see the module docstring for their meaning).
        rank: product of the cut bond dimensions, exact: an upper bound on the Schmidt
            rank of ``A^y`` matricized as (side A, side B), for every class ``y``.
        log2_rank: ``log2(rank)``.
        w_side: ``w_side[l][p]`` is ``"A"`` or ``"B"``: the side of conv matrix ``W(l, p)``.
        delta_side: ``delta_side[l][j]`` is ``"A"``, ``"B"``, or ``"cut"`` when the cut goes
            through that copy tensor (then its legs follow their neighbours' sides).
        out_side: side of the output vector ``a_y``.

    Examples:
        >>> import jax
        >>> from tnjax import Partition, Tree, convac, min_cut
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=(3, 3, 4), n_classes=2)
        >>> cut = min_cut(net, Partition.left_right(8))
        >>> cut.rank, [b.label for b in cut.bonds]
        (3, ['up(1,1):3'])
    """

    tree: Tree
    dims: tuple[int, ...]
    partition: Partition
    bonds: tuple[Bond, ...]
    rank: int
    log2_rank: float
    w_side: tuple[tuple[str, ...], ...]
    delta_side: tuple[tuple[str, ...], ...]
    out_side: str

    @property
    def side_a_nodes(self) -> frozenset[tuple]:
        """Graph nodes wholly on side A: ``("input", p)``, ``("W", l, p)``,
        ``("delta", l, j)`` and ``("out",)`` labels (cut deltas are in neither side)."""
        return self._nodes("A")

    @property
    def side_b_nodes(self) -> frozenset[tuple]:
        """Graph nodes wholly on side B (see :attr:`side_a_nodes`)."""
        return self._nodes("B")

    @property
    def cut_deltas(self) -> tuple[tuple[int, int], ...]:
        """``(level, window)`` of every copy tensor the cut goes through."""
        return tuple(
            (lvl, j)
            for lvl, sides in enumerate(self.delta_side)
            for j, s in enumerate(sides)
            if s == "cut"
        )

    def _nodes(self, side: str) -> frozenset[tuple]:
        nodes: set[tuple] = set()
        in_a = self.partition.mask
        for p, i in enumerate(self.tree.order):
            if in_a[i] == (side == "A"):
                nodes.add(("input", p))
        for lvl, sides in enumerate(self.w_side):
            nodes.update(("W", lvl, p) for p, s in enumerate(sides) if s == side)
        for lvl, sides in enumerate(self.delta_side):
            nodes.update(("delta", lvl, j) for j, s in enumerate(sides) if s == side)
        if self.out_side == side:
            nodes.add(("out",))
        return frozenset(nodes)

    def __repr__(self) -> str:
        bonds = ", ".join(b.label for b in self.bonds)
        return (
            f"MinCut(rank={self.rank} = 2**{self.log2_rank:.4g}, partition={self.partition.name!r}, "
            f"bonds=[{bonds}])"
        )


# ---------------------------------------------------------------------------- inputs
def _check_dims(tree: Tree, dims: Sequence[int] | None) -> tuple[int, ...]:
    if dims is None:
        raise TypeError(
            "min_cut of a Tree needs dims=(M, r_0, ..., r_{L-1}); pass a TreeTN to take them "
            "from the network"
        )
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise TypeError(f"dims must be positive integers, got {tuple(dims)!r}")
        out.append(int(d))
    if len(out) != tree.depth + 1:
        raise ValueError(
            f"dims {tuple(out)} has {len(out)} entries but a tree of depth {tree.depth} needs "
            f"{tree.depth + 1}: (M, r_0, ..., r_{{L-1}})"
        )
    if any(d < 1 for d in out):
        raise ValueError(f"dims must be positive, got {tuple(out)}")
    return tuple(out)


def _tree_and_dims(net_or_tree, dims) -> tuple[Tree, tuple[int, ...]]:
    if isinstance(net_or_tree, TreeTN):
        net_dims = tuple(int(d) for d in net_or_tree.dims)
        if dims is not None and tuple(dims) != net_dims:
            raise ValueError(
                f"dims={tuple(dims)} disagree with the network's dims {net_dims}: leave dims "
                "out when passing a TreeTN"
            )
        return net_or_tree.tree, net_dims
    if isinstance(net_or_tree, Tree):
        return net_or_tree, _check_dims(net_or_tree, dims)
    raise TypeError(
        f"expected a tnjax.TreeTN or a tnjax.Tree (with dims=...), got {type(net_or_tree).__name__}"
    )


# ---------------------------------------------------------------------------- graph
def _cap(dim: int) -> int:
    return round(math.log2(dim) * _SCALE)


@functools.lru_cache(maxsize=64)
def _graph(tree: Tree, dims: tuple[int, ...]) -> tuple[nx.DiGraph, dict]:
    """The flow graph of ``(tree, dims)`` without source and sink, and the map from each
    arc ``(u, v)`` to the :class:`Bond` it cuts."""
    g = nx.DiGraph()
    bond_of: dict[tuple, Bond] = {}

    def edge(u, v, bond: Bond) -> None:
        # an undirected bond: both arcs; a split delta is entered at "in", left at "out"
        u_out = (*u, "out") if u[0] == "delta" else u
        v_in = (*v, "in") if v[0] == "delta" else v
        v_out = (*v, "out") if v[0] == "delta" else v
        u_in = (*u, "in") if u[0] == "delta" else u
        for a, b in ((u_out, v_in), (v_out, u_in)):
            g.add_edge(a, b, capacity=_cap(bond.dim))
            bond_of[(a, b)] = bond

    m, top = dims[0], tree.depth - 1
    for p in range(tree.n_inputs):
        edge(("input", p), ("W", 0, p), Bond("input", 0, p, m))
    for lvl, k in enumerate(tree.windows):
        r = dims[lvl + 1]
        for j in range(tree.level_sizes[lvl + 1]):
            a, b = ("delta", lvl, j, "in"), ("delta", lvl, j, "out")
            g.add_edge(a, b, capacity=_cap(r))
            bond_of[(a, b)] = Bond("delta", lvl, j, r)
            for c in range(j * k, (j + 1) * k):
                edge(("W", lvl, c), ("delta", lvl, j), Bond("conv", lvl, c, r))
            upper = ("out",) if lvl == top else ("W", lvl + 1, j)
            edge(("delta", lvl, j), upper, Bond("up", lvl, j, r))
    return g, bond_of


def _result(tree, dims, partition, bonds, w_side, delta_side, out_side) -> MinCut:
    bonds = tuple(sorted(bonds))
    return MinCut(
        tree=tree,
        dims=dims,
        partition=partition,
        bonds=bonds,
        rank=math.prod(b.dim for b in bonds),
        log2_rank=float(sum(math.log2(b.dim) for b in bonds)),
        w_side=tuple(tuple(row) for row in w_side),
        delta_side=tuple(tuple(row) for row in delta_side),
        out_side=out_side,
    )


def _cut_maxflow(tree: Tree, dims: tuple[int, ...], partition: Partition) -> MinCut:
    """networkx max-flow on the (vertex-split) graph, integer log2 capacities."""
    base, bond_of = _graph(tree, dims)
    g = base.copy()
    for p, i in enumerate(tree.order):  # no capacity attribute: infinite
        if partition.mask[i]:
            g.add_edge("source", ("input", p))
        else:
            g.add_edge(("input", p), "sink")
    _, (s_side, _) = nx.minimum_cut(g, "source", "sink")
    s_side = set(s_side)
    # normalise: a delta whose out-node is on the source side has its in-node there too
    # (moving it never raises the cut; it happens only through zero-capacity bonds)
    for lvl in range(tree.depth):
        for j in range(tree.level_sizes[lvl + 1]):
            if ("delta", lvl, j, "out") in s_side:
                s_side.add(("delta", lvl, j, "in"))
    bonds = [bond for (a, b), bond in bond_of.items() if a in s_side and b not in s_side]

    def side(node):
        return "A" if node in s_side else "B"

    w_side = [
        [side(("W", lvl, p)) for p in range(tree.level_sizes[lvl])] for lvl in range(tree.depth)
    ]
    delta_side = []
    for lvl in range(tree.depth):
        row = []
        for j in range(tree.level_sizes[lvl + 1]):
            a, b = side(("delta", lvl, j, "in")), side(("delta", lvl, j, "out"))
            row.append(a if a == b else "cut")
        delta_side.append(row)
    return _result(tree, dims, partition, bonds, w_side, delta_side, side(("out",)))


_OTHER = {"A": "B", "B": "A"}


def _cut_tree(tree: Tree, dims: tuple[int, ...], partition: Partition) -> MinCut:
    """Exact dynamic programme on the tree: the network without its terminals is a tree,
    so the min-cut is a bottom-up minimisation of products of bond dimensions (exact
    integers) over the side of each node (A, B, or "cut" for a copy tensor)."""
    inf = math.inf
    # options of the child below each W of the current level: {state: cost}
    child = [{"A" if partition.mask[i] else "B": 1} for i in tree.order]
    w_choice, d_choice = [], []  # per level: the argmin choices, for the way back down
    for lvl, k in enumerate(tree.windows):
        d_edge, r = dims[lvl], dims[lvl + 1]
        w_cost, wc_row = [], []
        for opts in child:
            costs, picks = {}, {}
            for s in ("A", "B"):
                best, pick = inf, None
                for c, cost in opts.items():
                    total = cost if c in (s, "cut") else cost * d_edge
                    if total < best:
                        best, pick = total, c
                costs[s], picks[s] = best, pick
            w_cost.append(costs)
            wc_row.append(picks)
        w_choice.append(wc_row)
        nxt, dc_row = [], []
        for j in range(tree.level_sizes[lvl + 1]):
            kids = w_cost[j * k : (j + 1) * k]
            opts, picks = {}, {}
            for s in ("A", "B"):
                total, sides = 1, []
                for wc in kids:
                    same, other = wc[s], wc[_OTHER[s]] * r
                    total *= same if same <= other else other
                    sides.append(s if same <= other else _OTHER[s])
                opts[s], picks[s] = total, sides
            total, sides = r, []
            for wc in kids:
                total *= min(wc["A"], wc["B"])
                sides.append("A" if wc["A"] <= wc["B"] else "B")
            opts["cut"], picks["cut"] = total, sides
            nxt.append(opts)
            dc_row.append(picks)
        d_choice.append(dc_row)
        child = nxt
    (top,) = child
    state = min(("A", "B", "cut"), key=lambda s: top[s])
    out_side = "A" if state == "cut" else state
    # way back down: assign sides and collect the cut bonds
    bonds: list[Bond] = []
    delta_side = [[""] * tree.level_sizes[lvl + 1] for lvl in range(tree.depth)]
    w_side = [[""] * tree.level_sizes[lvl] for lvl in range(tree.depth)]
    states = [state]
    for lvl in range(tree.depth - 1, -1, -1):
        k, r = tree.windows[lvl], dims[lvl + 1]
        below = [""] * tree.level_sizes[lvl]
        for j, st in enumerate(states):
            delta_side[lvl][j] = st
            if st == "cut":
                bonds.append(Bond("delta", lvl, j, r))
            for c, ws in enumerate(d_choice[lvl][j][st]):
                p = j * k + c
                w_side[lvl][p] = ws
                if st != "cut" and ws != st:
                    bonds.append(Bond("conv", lvl, p, r))
                below[p] = w_choice[lvl][p][ws]
                if below[p] not in (ws, "cut"):
                    kind = "input" if lvl == 0 else "up"
                    bonds.append(Bond(kind, max(lvl - 1, 0), p, dims[lvl]))
        states = below
    return _result(tree, dims, partition, bonds, w_side, delta_side, out_side)


_METHODS = {"tree": _cut_tree, "maxflow": _cut_maxflow}


@functools.lru_cache(maxsize=4096)
def _cut(tree: Tree, dims: tuple[int, ...], partition: Partition, method: str) -> MinCut:
    return _METHODS[method](tree, dims, partition)


# ---------------------------------------------------------------------------- public
def min_cut(
    net_or_tree: TreeTN | Tree,
    partition: Partition | np.ndarray,
    *,
    dims: Sequence[int] | None = None,
    method: str = "tree",
) -> MinCut:
    """A minimum cut between the two sides of ``partition``: its bond dimensions bound the
    Schmidt rank of the coefficient tensor matricized across the partition.

    The bound depends only on the topology and the bond dimensions, so a bare
    :class:`Tree` with ``dims`` works too. Plain Python (networkx max-flow), cached per
    ``(tree, dims, partition)``; call it outside jit.

    Args:
        net_or_tree: a network, or a :class:`Tree` together with ``dims``.
        partition: a :class:`Partition` of the inputs or a boolean mask (True = side A),
            inputs in the user's layout.
        dims: ``(M, r_0, ..., r_{L-1})``, needed with a bare tree.
        method: ``"tree"`` (default): exact dynamic programme over the tree on integer
            products; ``"maxflow"``: networkx max-flow on the vertex-split graph with
            integer-scaled ``log2`` capacities. Both give the same rank (ties may pick
            different bonds).

    Returns:
        :class:`MinCut`: the cut bonds, ``rank`` (exact int) and ``log2_rank``, and the side
        of every node.

    Raises:
        ValueError: partition size or ``dims`` do not fit the tree.
        TypeError: wrong argument types.

    Examples:
        >>> from tnjax import Partition, Tree, min_cut
        >>> cut = min_cut(Tree.binary(8), Partition.interleaved(8), dims=(2, 4, 4, 4))
        >>> cut.rank, cut.bonds[0].kind
        (16, 'input')
    """
    tree, dims = _tree_and_dims(net_or_tree, dims)
    partition = as_partition(partition, tree.n_inputs, tree.shape)
    if method not in _METHODS:
        raise ValueError(f"unknown min-cut method {method!r}: use one of {tuple(_METHODS)}")
    return _cut(tree, dims, partition, method)


def min_cut_bound(
    net_or_tree: TreeTN | Tree,
    partition: Partition | np.ndarray,
    *,
    dims: Sequence[int] | None = None,
) -> float:
    """``log2`` of the min-cut rank bound: every entropy of the partition is at most this
    many bits (``min_cut(...).log2_rank``).

    Examples:
        >>> from tnjax import Partition, Tree, min_cut_bound
        >>> min_cut_bound(Tree.binary(4), Partition.left_right(4), dims=(2, 3, 5))
        1.584962500721156
    """
    return min_cut(net_or_tree, partition, dims=dims).log2_rank
