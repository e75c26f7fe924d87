"""Bipartitions (A, B) of a network's inputs: static, hashable, validated once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Partition", "as_partition"]


def _shape_of(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)


def _image(shape: tuple[int, ...], what: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"{what} needs a 2D input shape (h, w), got {shape}")
    return shape


@dataclasses.dataclass(frozen=True)
class Partition:
    """A bipartition of the inputs: ``mask[i]`` is True for inputs on side A.

    Both sides are non-empty and every input is on exactly one side (validated).

    Examples:
        >>> from tnjax import Partition
        >>> Partition.left_right(4).side_a
        (0, 1)
        >>> Partition.checkerboard((2, 2)).mask
        (True, False, False, True)
    """

    mask: tuple[bool, ...]
    shape: tuple[int, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        mask = tuple(bool(v) for v in np.asarray(self.mask, dtype=bool).reshape(-1))
        shape = _shape_of(self.shape)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "shape", shape)
        if int(np.prod(shape)) != len(mask):
            raise ValueError(f"partition mask has {len(mask)} entries but shape {shape}")
        if all(mask) or not any(mask):
            raise ValueError(
                f"partition {self.name!r} puts all {len(mask)} inputs on one side: both sides "
                "must be non-empty"
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_mask(cls, mask, *, shape=None, name: str = "mask") -> Partition:
        """From a boolean array (True = side A); its shape is the input layout."""
        arr = np.asarray(mask)
        if arr.dtype != bool:
            raise TypeError(f"mask must be boolean, got dtype {arr.dtype}")
        return cls(tuple(arr.reshape(-1)), arr.shape if shape is None else shape, name)

    @classmethod
    def from_sides(
        cls,
        side_a: Iterable[int],
        side_b: Iterable[int] | None = None,
        *,
        shape: int | Sequence[int],
        name: str = "custom",
    ) -> Partition:
        """From the input indices of side A (and optionally of side B, checked to be the
        complement)."""
        shape = _shape_of(shape)
        n = int(np.prod(shape))
        a = _check_indices(side_a, n, "side A")
        if side_b is None:
            b = set(range(n)) - a
        else:
            b = _check_indices(side_b, n, "side B")
            both = sorted(a & b)
            if both:
                raise ValueError(f"partition has input {both[0]} on both sides")
            missing = sorted(set(range(n)) - a - b)
            if missing:
                raise ValueError(
                    f"partition leaves input {missing[0]} on neither side "
                    f"({len(missing)} uncovered): every input must be on one side"
                )
        mask = np.zeros(n, dtype=bool)
        mask[sorted(a)] = True
        return cls(tuple(mask), shape, name)

    @classmethod
    def left_right(cls, shape: int | Sequence[int]) -> Partition:
        """Left half against right half (1D: first half against second)."""
        shape = _shape_of(shape)
        cols = np.indices(shape)[-1]
        return cls(tuple((cols < shape[-1] // 2).reshape(-1)), shape, "left/right")

    @classmethod
    def top_bottom(cls, shape: Sequence[int]) -> Partition:
        """Top half of an image against the bottom half."""
        h, w = _image(_shape_of(shape), "top_bottom")
        rows = np.indices((h, w))[0]
        return cls(tuple((rows < h // 2).reshape(-1)), (h, w), "top/bottom")

    @classmethod
    def interleaved(cls, shape: int | Sequence[int]) -> Partition:
        """Even inputs against odd inputs (1D); for an image, even columns against odd."""
        shape = _shape_of(shape)
        cols = np.indices(shape)[-1]
        return cls(tuple((cols % 2 == 0).reshape(-1)), shape, "interleaved")

    @classmethod
    def checkerboard(cls, shape: Sequence[int]) -> Partition:
        """The 2D interleaved partition: pixels with even ``i + j`` against odd."""
        h, w = _image(_shape_of(shape), "checkerboard")
        i, j = np.indices((h, w))
        return cls(tuple(((i + j) % 2 == 0).reshape(-1)), (h, w), "checkerboard")

    @classmethod
    def block(
        cls, shape: int | Sequence[int], *, start: int | Sequence[int], size: int | Sequence[int]
    ) -> Partition:
        """A contiguous block (a square region of an image, or a run of a sequence) against
        the rest: ``start`` and ``size`` per axis."""
        shape = _shape_of(shape)
        start, size = _shape_of(start), _shape_of(size)
        if len(size) == 1 and len(shape) == 2:
            size = size * 2
        if len(start) != len(shape) or len(size) != len(shape):
            raise ValueError(f"block start {start} / size {size} must have {len(shape)} entries")
        for ax, (s0, sz, n) in enumerate(zip(start, size, shape, strict=True)):
            if sz < 1 or s0 < 0 or s0 + sz > n:
                raise ValueError(
                    f"block [{s0}, {s0 + sz}) on axis {ax} does not fit in 0..{n}: move or shrink it"
                )
        mask = np.zeros(shape, dtype=bool)
        mask[tuple(slice(s0, s0 + sz) for s0, sz in zip(start, size, strict=True))] = True
        return cls(tuple(mask.reshape(-1)), shape, f"block{size}@{start}")

    @classmethod
    def mirror_pairs(cls, shape: Sequence[int]) -> Partition:
        """Splits every left-right mirror pair ((i, j), (i, w-1-j)): side A holds the left
        member on even rows and the right member on odd rows. Mirror pooling joins each
        pair at its first level; square pooling meets the pairs only near the root."""
        h, w = _image(_shape_of(shape), "mirror_pairs")
        if w % 2:
            raise ValueError(f"mirror_pairs needs an even width, got {w}")
        i, j = np.indices((h, w))
        left = j < w // 2
        mask = (i % 2 == 0) == left
        return cls(tuple(mask.reshape(-1)), (h, w), "mirror pairs")

    # ------------------------------------------------------------------ derived
    @property
    def n_inputs(self) -> int:
        return len(self.mask)

    @property
    def side_a(self) -> tuple[int, ...]:
        return tuple(i for i, v in enumerate(self.mask) if v)

    @property
    def side_b(self) -> tuple[int, ...]:
        return tuple(i for i, v in enumerate(self.mask) if not v)

    def complement(self) -> Partition:
        return Partition(tuple(not v for v in self.mask), self.shape, f"not {self.name}")

    def as_array(self) -> np.ndarray:
        """The mask as a boolean array of the input layout."""
        return np.asarray(self.mask, dtype=bool).reshape(self.shape)

    def __repr__(self) -> str:
        return f"Partition({self.name!r}, |A|={len(self.side_a)}, |B|={len(self.side_b)}, shape={self.shape})"


def _check_indices(indices: Iterable[int], n: int, what: str) -> set[int]:
    seen: set[int] = set()
    for i in indices:
        i = int(i)
        if not 0 <= i < n:
            raise ValueError(f"{what} names input {i}, outside 0..{n - 1}")
        if i in seen:
            raise ValueError(f"{what} names input {i} twice")
        seen.add(i)
    return seen


def as_partition(partition, n_inputs: int, shape: Sequence[int] | None = None) -> Partition:
    """Accept a :class:`Partition` or a boolean mask; check it fits ``n_inputs`` inputs
    and, given the network's input layout ``shape``, that layout (a flat mask of
    ``n_inputs`` entries fits any layout: inputs are numbered row-major)."""
    if not isinstance(partition, Partition):
        arr = np.asarray(partition)
        if arr.dtype != bool:
            raise TypeError(
                f"a partition must be a tnjax.Partition or a boolean mask, got {type(partition).__name__}"
                f" of dtype {arr.dtype}"
            )
        partition = Partition.from_mask(arr)
    if partition.n_inputs != n_inputs:
        raise ValueError(
            f"partition covers {partition.n_inputs} inputs but the network has {n_inputs}"
        )
    if shape is not None and len(partition.shape) > 1 and tuple(partition.shape) != tuple(shape):
        raise ValueError(
            f"partition {partition.name!r} was built for a {partition.shape} layout but the "
            f"network's inputs are laid out as {tuple(shape)}: build it on that shape"
        )
    return partition
