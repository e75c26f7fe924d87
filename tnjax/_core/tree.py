"""Pooling topology of a tree tensor network: which inputs pool together, level by level.

A :class:`Tree` is static, hashable metadata. Inputs are numbered ``0..n_inputs-1`` in
the user's layout (row-major pixels for an image). ``order`` lists the inputs in *leaf
order*: at level 0 the first ``windows[0]`` leaves pool together, then the next
``windows[0]``, and so on; at level 1 the first ``windows[1]`` level-0 nodes pool
together, etc. Any pooling geometry is an ordering plus per-level window sizes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Tree"]


def _as_int_tuple(values: Sequence[int], what: str) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or int(v) != v:
            raise TypeError(f"{what} must be integers, got {v!r}")
        out.append(int(v))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Tree:
    """Pooling geometry of a ConvAC / tree tensor network.

    Attributes:
        order: permutation of ``range(n_inputs)``; ``order[p]`` is the input at leaf
            position ``p``.
        windows: pooling window (number of children) of each level, bottom to top.
            Their product must equal the number of inputs.
        shape: layout of the inputs, ``(n,)`` for a sequence or ``(h, w)`` for an
            image (row-major). Used by partitions and plots; does not change the math.

    Examples:
        >>> from tnjax import Tree
        >>> Tree.binary(8).windows
        (2, 2, 2)
        >>> Tree.quad(4, 4).level_sizes
        (16, 4, 1)
    """

    order: tuple[int, ...]
    windows: tuple[int, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        order = _as_int_tuple(self.order, "order")
        windows = _as_int_tuple(self.windows, "windows")
        shape = _as_int_tuple(self.shape, "shape")
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "shape", shape)
        n = len(order)
        if n < 2:
            raise ValueError(f"a tree needs at least 2 inputs, got {n}")
        if sorted(order) != list(range(n)):
            seen: dict[int, int] = {}
            for p, i in enumerate(order):
                if not 0 <= i < n:
                    raise ValueError(
                        f"order names input {i} at position {p}, outside 0..{n - 1}: "
                        "order must be a permutation of range(n_inputs)"
                    )
                if i in seen:
                    raise ValueError(
                        f"order names input {i} twice (positions {seen[i]} and {p}): "
                        "order must be a permutation of range(n_inputs)"
                    )
                seen[i] = p
        if not windows:
            raise ValueError("windows is empty: give at least one pooling level")
        for lvl, k in enumerate(windows):
            if k < 2:
                raise ValueError(
                    f"window {k} at level {lvl} is below 2: every pooling joins 2+ nodes"
                )
        size = n
        for lvl, k in enumerate(windows):
            if size % k:
                raise ValueError(
                    f"window {k} at level {lvl} does not divide the {size} nodes of that level "
                    f"(windows {windows}, {n} inputs): the product of windows must equal n_inputs"
                )
            size //= k
        if size != 1:
            raise ValueError(
                f"windows {windows} multiply to {math.prod(windows)}, not to the {n} inputs: "
                f"add levels until one root remains (e.g. a final window of {size})"
            )
        if math.prod(shape) != n:
            raise ValueError(f"shape {shape} holds {math.prod(shape)} inputs, not {n}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_windows(
        cls, n_inputs: int, windows: Sequence[int], *, order: Sequence[int] | None = None
    ) -> Tree:
        """A 1D tree with per-level windows, e.g. ``Tree.from_windows(12, (3, 2, 2))``.

        Args:
            n_inputs: number of inputs.
            windows: window size of each level, bottom to top; product ``n_inputs``.
            order: leaf order (default: inputs in their natural order).
        """
        order = tuple(range(n_inputs)) if order is None else tuple(order)
        return cls(order=order, windows=tuple(windows), shape=(len(order),))

    @classmethod
    def binary(cls, n_inputs: int) -> Tree:
        """A 1D binary tree (windows of 2); ``n_inputs`` must be a power of two."""
        if n_inputs < 2 or n_inputs & (n_inputs - 1):
            raise ValueError(
                f"Tree.binary needs a power of two inputs, got {n_inputs}: "
                "use Tree.from_windows for other sizes"
            )
        return cls.from_windows(n_inputs, (2,) * (n_inputs.bit_length() - 1))

    @classmethod
    def flat(cls, n_inputs: int) -> Tree:
        """One global pooling over all inputs: the shallow (CP) network's topology."""
        return cls.from_windows(n_inputs, (n_inputs,))

    @classmethod
    def grid(cls, height: int, width: int, windows: Sequence[tuple[int, int]]) -> Tree:
        """A 2D tree: level ``l`` pools ``windows[l] = (wh, ww)`` blocks of the image.

        Inputs are pixels numbered row-major (``i * width + j``).

        Args:
            height: image height.
            width: image width.
            windows: per-level ``(wh, ww)`` block sizes; their products over levels must
                equal ``height`` and ``width``.
        """
        wins = [tuple(_as_int_tuple(w, "grid windows")) for w in windows]
        for lvl, w in enumerate(wins):
            if len(w) != 2:
                raise ValueError(f"grid window at level {lvl} is {w}: give (height, width) pairs")
        hs, ws = math.prod(w[0] for w in wins), math.prod(w[1] for w in wins)
        if (hs, ws) != (height, width):
            raise ValueError(
                f"grid windows {wins} tile a {hs}x{ws} image, not {height}x{width}: "
                "the products of window heights and widths must equal the image's"
            )
        pos = _grid_positions(height, width, wins)
        order = np.empty(height * width, dtype=np.int64)
        order[pos] = np.arange(height * width)
        return cls(
            order=tuple(int(i) for i in order),
            windows=tuple(a * b for a, b in wins),
            shape=(height, width),
        )

    @classmethod
    def quad(cls, height: int, width: int | None = None) -> Tree:
        """A 2D quad tree (2x2 windows) over an image whose sides are equal powers of 2."""
        width = height if width is None else width
        if height != width or height < 2 or height & (height - 1):
            raise ValueError(
                f"Tree.quad needs a square image with a power-of-two side, got {height}x{width}: "
                "use Tree.grid with explicit windows"
            )
        return cls.grid(height, width, [(2, 2)] * (height.bit_length() - 1))

    @classmethod
    def mirror(cls, height: int, width: int | None = None) -> Tree:
        """Mirror pooling (Cohen & Shashua, ICLR 2017): pixel (i, j) first pools with its
        left-right mirror (i, width-1-j); the pairs then pool in 2x2 blocks over the left
        half, then in 2x1 / 1x2 blocks until one root is left."""
        width = height if width is None else width
        if width % 2:
            raise ValueError(f"mirror pooling needs an even width, got {width}")
        half = width // 2
        wins = _auto_grid_windows(height, half)
        pos = _grid_positions(height, half, wins)  # position of each left-half pair
        order = []
        for p_sorted in np.argsort(pos):
            i, j = divmod(int(p_sorted), half)
            order += [i * width + j, i * width + (width - 1 - j)]
        return cls(
            order=tuple(order),
            windows=(2, *(a * b for a, b in wins)),
            shape=(height, width),
        )

    # ------------------------------------------------------------------ derived
    @property
    def n_inputs(self) -> int:
        return len(self.order)

    @property
    def depth(self) -> int:
        """Number of pooling levels L."""
        return len(self.windows)

    @functools.cached_property
    def level_sizes(self) -> tuple[int, ...]:
        """Number of nodes entering each level's conv, then the root: ``(N, N/k0, ..., 1)``."""
        sizes = [self.n_inputs]
        for k in self.windows:
            sizes.append(sizes[-1] // k)
        return tuple(sizes)

    @functools.cached_property
    def leaf_position(self) -> tuple[int, ...]:
        """Inverse of ``order``: ``leaf_position[i]`` is the leaf position of input ``i``."""
        inv = [0] * self.n_inputs
        for p, i in enumerate(self.order):
            inv[i] = p
        return tuple(inv)

    def inputs_under(self, level: int, node: int) -> tuple[int, ...]:
        """Inputs in the subtree of ``node`` at ``level`` (level 0 = leaves,
        level l+1 = output of pooling level l)."""
        span = self.n_inputs // self.level_sizes[level]
        return tuple(sorted(self.order[node * span : (node + 1) * span]))

    def __repr__(self) -> str:
        return f"Tree(n_inputs={self.n_inputs}, windows={self.windows}, shape={self.shape})"


def _grid_positions(height: int, width: int, wins: Sequence[tuple[int, int]]) -> np.ndarray:
    """Leaf position of each pixel (row-major) in a 2D tree with per-level blocks."""
    i, j = np.divmod(np.arange(height * width), width)
    pos = np.zeros(height * width, dtype=np.int64)
    stride = 1
    for wh, ww in wins:
        i, di = np.divmod(i, wh)
        j, dj = np.divmod(j, ww)
        pos += (di * ww + dj) * stride
        stride *= wh * ww
    return pos


def _auto_grid_windows(height: int, width: int) -> list[tuple[int, int]]:
    """2x2 windows while both sides are even, then 2x1 / 1x2 / prime factors."""
    wins = []
    h, w = height, width
    while h > 1 or w > 1:
        if h % 2 == 0 and w % 2 == 0:
            wins.append((2, 2))
            h, w = h // 2, w // 2
        elif h > 1:
            f = _smallest_factor(h)
            wins.append((f, 1))
            h //= f
        else:
            f = _smallest_factor(w)
            wins.append((1, f))
            w //= f
    return wins


def _smallest_factor(n: int) -> int:
    return next(f for f in range(2, n + 1) if n % f == 0)
