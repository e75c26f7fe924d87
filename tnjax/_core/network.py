"""The central object: a ConvAC as an immutable tree tensor network pytree."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from tnjax._core.tree import Tree

__all__ = ["TreeTN", "convac", "shallow_convac"]


@jax.tree_util.register_pytree_node_class
class TreeTN:
    """A ConvAC / tree tensor network: per-level conv tensors and an output matrix.

    Leaves (traced by JAX): ``convs[l]`` and ``out``. Static metadata (hashable, part of
    the treedef): the :class:`Tree` topology and ``shared``.

    Level ``l`` maps each of the ``tree.level_sizes[l]`` nodes from ``dims[l]`` to
    ``dims[l+1]`` channels (``dims = (M, r_0, ..., r_{L-1})``), then pools windows of
    ``tree.windows[l]`` nodes by elementwise product. ``out`` maps ``r_{L-1}`` to ``Y``.

    * unshared (locally connected): ``convs[l].shape == (level_sizes[l], dims[l], dims[l+1])``
    * shared (a true convolution): ``convs[l].shape == (dims[l], dims[l+1])``

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac
        >>> net = convac(key=jax.random.key(0), tree=Tree.binary(8), m=2, channels=(3, 3, 4), n_classes=2)
        >>> net.dims, net.n_classes
        ((2, 3, 3, 4), 2)
    """

    __slots__ = ("convs", "out", "tree", "shared")

    convs: tuple[Array, ...]
    out: Float[Array, "r y"]
    tree: Tree
    shared: bool

    def __init__(self, convs: Sequence[Array], out: Array, *, tree: Tree, shared: bool = False):
        if not isinstance(tree, Tree):
            raise TypeError(f"tree must be a tnjax.Tree, got {type(tree).__name__}")
        convs = tuple(jnp.asarray(c) for c in convs)
        out = jnp.asarray(out)
        _validate(convs, out, tree, bool(shared))
        object.__setattr__(self, "convs", convs)
        object.__setattr__(self, "out", out)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "shared", bool(shared))

    def __setattr__(self, name, value):
        raise AttributeError("TreeTN is immutable: use .replace(...) to make a changed copy")

    # pytree protocol: no validation on unflatten (leaves may be tracers, None, specs...)
    def tree_flatten(self):
        return (self.convs, self.out), (self.tree, self.shared)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        convs, out = children
        object.__setattr__(obj, "convs", tuple(convs))
        object.__setattr__(obj, "out", out)
        object.__setattr__(obj, "tree", aux[0])
        object.__setattr__(obj, "shared", aux[1])
        return obj

    def replace(self, *, convs=None, out=None) -> TreeTN:
        """A copy with some tensors replaced (validated)."""
        return TreeTN(
            self.convs if convs is None else convs,
            self.out if out is None else out,
            tree=self.tree,
            shared=self.shared,
        )

    # ------------------------------------------------------------------ derived metadata
    @property
    def dims(self) -> tuple[int, ...]:
        """``(M, r_0, ..., r_{L-1})``: input dimension then channels per level."""
        return (self.convs[0].shape[-2], *(c.shape[-1] for c in self.convs))

    @property
    def m(self) -> int:
        return self.dims[0]

    @property
    def channels(self) -> tuple[int, ...]:
        return self.dims[1:]

    @property
    def n_classes(self) -> int:
        return self.out.shape[-1]

    @property
    def n_inputs(self) -> int:
        return self.tree.n_inputs

    @property
    def dtype(self):
        return self.out.dtype

    def level_weights(self, level: int) -> Float[Array, "n r_in r_out"]:
        """Conv tensors of ``level`` with one matrix per node (broadcast if shared)."""
        w = self.convs[level]
        if self.shared:
            w = jnp.broadcast_to(w, (self.tree.level_sizes[level], *w.shape))
        return w

    def astype(self, dtype) -> TreeTN:
        """All tensors cast to ``dtype`` (e.g. ``jnp.float64`` for oracles)."""
        return jax.tree_util.tree_map(lambda x: x.astype(dtype), self)

    def n_params(self) -> int:
        return sum(int(x.size) for x in jax.tree_util.tree_leaves(self))

    def __repr__(self) -> str:
        kind = "shared" if self.shared else "unshared"
        return (
            f"TreeTN({self.tree!r}, dims={self.dims}, n_classes={self.n_classes}, {kind}, "
            f"dtype={self.dtype})"
        )


def _validate(convs, out, tree: Tree, shared: bool) -> None:
    if len(convs) != tree.depth:
        raise ValueError(
            f"got {len(convs)} conv tensors for a tree of depth {tree.depth} "
            f"(windows {tree.windows}): give one per pooling level"
        )
    prev = None
    for lvl, c in enumerate(convs):
        want_ndim = 2 if shared else 3
        if c.ndim != want_ndim:
            kind = "(r_in, r_out)" if shared else "(nodes, r_in, r_out)"
            raise ValueError(
                f"conv tensor at level {lvl} has shape {c.shape}; with shared={shared} it must be "
                f"{kind}"
            )
        if not shared and c.shape[0] != tree.level_sizes[lvl]:
            raise ValueError(
                f"conv tensor at level {lvl} has {c.shape[0]} nodes but level {lvl} of the tree "
                f"has {tree.level_sizes[lvl]}"
            )
        if prev is not None and c.shape[-2] != prev:
            raise ValueError(
                f"conv tensor at level {lvl} takes {c.shape[-2]} channels but level {lvl - 1} "
                f"gives {prev}"
            )
        prev = c.shape[-1]
    if out.ndim != 2 or out.shape[0] != prev:
        raise ValueError(f"out has shape {out.shape}; it must be (r_last={prev}, n_classes)")
    dtypes = {x.dtype for x in (*convs, out)}
    if len(dtypes) != 1:
        raise ValueError(f"all tensors must share one dtype, got {sorted(map(str, dtypes))}")


def _check_channels(channels: Sequence[int], depth: int, what: str = "channels") -> tuple[int, ...]:
    channels = tuple(int(c) for c in channels)
    if len(channels) != depth:
        raise ValueError(
            f"{what} has {len(channels)} entries but the tree has {depth} levels: "
            f"give one channel number per level"
        )
    if any(c < 1 for c in channels):
        raise ValueError(f"{what} must be positive, got {channels}")
    return channels


def convac(
    tree: Tree,
    *,
    key: jax.Array,
    m: int,
    channels: Sequence[int] | int,
    n_classes: int,
    shared: bool = False,
    dtype=jnp.float32,
    init: str = "unit",
) -> TreeTN:
    """A deep ConvAC (hierarchical Tucker network) with random weights.

    Args:
        key: PRNG key.
        tree: pooling topology.
        m: input (representation) dimension M.
        channels: ``r_0..r_{L-1}``, one per level (an int means the same at every level).
        n_classes: number of outputs Y.
        shared: one conv matrix per level (a convolution) instead of one per node.
        dtype: floating dtype of the tensors.
        init: ``"unit"``: Gaussian scaled so that each conv preserves the expected norm
            (std ``1/sqrt(r_in)``); ``"identity"``: near-identity maps that start every
            pooled vector near the all-ones direction, a stable start for training.

    Examples:
        >>> import jax
        >>> from tnjax import Tree, convac
        >>> convac(key=jax.random.key(0), tree=Tree.quad(4), m=3, channels=4, n_classes=10).channels
        (4, 4)
    """
    if isinstance(channels, int):
        channels = (channels,) * tree.depth
    channels = _check_channels(channels, tree.depth)
    if m < 1 or n_classes < 1:
        raise ValueError(f"m and n_classes must be positive, got m={m}, n_classes={n_classes}")
    if init not in ("unit", "identity"):
        raise ValueError(f"unknown init {init!r}: use 'unit' or 'identity'")
    dims = (m, *channels)
    shapes = []
    for lvl in range(tree.depth):
        shape = (dims[lvl], dims[lvl + 1])
        shapes.append(shape if shared else (tree.level_sizes[lvl], *shape))
    shapes.append((channels[-1], n_classes))
    *convs, out = _init_all(key, tuple(shapes), jnp.dtype(dtype), init)
    return TreeTN(convs, out, tree=tree, shared=shared)


def shallow_convac(
    n_inputs: int | Tree,
    *,
    key: jax.Array,
    m: int,
    z: int,
    n_classes: int,
    shared: bool = False,
    dtype=jnp.float32,
    init: str = "unit",
) -> TreeTN:
    """A shallow ConvAC (CP decomposition): one conv of ``z`` channels, global product
    pooling, output layer. ``n_inputs`` may be a Tree (its layout is kept, its windows are
    replaced by one global window).
    """
    if isinstance(n_inputs, Tree):
        tree = Tree(order=n_inputs.order, windows=(n_inputs.n_inputs,), shape=n_inputs.shape)
    else:
        tree = Tree.flat(int(n_inputs))
    return convac(
        key=key,
        tree=tree,
        m=m,
        channels=(z,),
        n_classes=n_classes,
        shared=shared,
        dtype=dtype,
        init=init,
    )


def _init_all(key, shapes, dtype, init: str):
    """All tensors from one flat Gaussian draw: one random-number kernel to compile per
    network size, not one per tensor shape (threefry compiles slowly on CPU)."""
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.normal(key, (sum(sizes),), dtype)
    xp = jnp if isinstance(flat, jax.core.Tracer) else np  # concrete: finish in numpy
    flat = flat if xp is jnp else np.asarray(flat)
    tensors, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        w = flat[start : start + size].reshape(shape) / np.sqrt(shape[-2]).astype(dtype)
        start += size
        if init == "identity":
            w = xp.eye(shape[-2], shape[-1], dtype=dtype) + 0.1 * w
        tensors.append(jnp.asarray(w, dtype=dtype))
    return tuple(tensors)
