"""Levine et al. (ICLR 2018, Sec. 8) local / global tasks: one binarised MNIST digit,
resized, placed at a random position of a black 64x64 image.

* ``"local"``: the digit shrunk to 8x8 (its information sits in a small region);
* ``"global"``: the digit enlarged to 32x32 (its information spans half the image).

Deterministic under a seed: the digit is cropped to its bounding box (padded to a
square), resampled by exact area averaging (a fixed linear map, no PIL), binarised again at
0.3 (a lower threshold than 0.5 keeps the thin strokes of a shrunk digit connected), and put at a position drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["TASKS", "binarize", "make_task", "place_digits", "resize_area"]

#: digit side of each task on a 64x64 canvas
TASKS = {"local": 8, "global": 32}


def binarize(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``images > threshold`` as float32 (MNIST pixels in [0, 1])."""
    return (np.asarray(images) > threshold).astype(np.float32)


@functools.cache
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` exact area-averaging resampler: row ``o`` is the overlap of output
    cell ``[o, o+1) * n_in / n_out`` with each input cell, divided by the cell width."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return (overlap / (n_in / n_out)).astype(np.float64)


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average resampling of a 2D image to ``(size, size)`` (up or down).

    Example:
        >>> import numpy as np
        >>> resize_area(np.ones((20, 20)), 8).round(6).max()
        1.0
    """
    image = np.asarray(image, np.float64)
    rh = _area_matrix(image.shape[0], size)
    rw = _area_matrix(image.shape[1], size)
    return rh @ image @ rw.T


def _square_crop(image: np.ndarray) -> np.ndarray:
    """The bounding box of the non-zero pixels, zero-padded (centred) to a square."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if rows.size == 0:  # blank image: keep it whole
        return image
    crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    s = max(h, w)
    out = np.zeros((s, s), image.dtype)
    out[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = crop
    return out


def place_digits(
    images: np.ndarray,
    *,
    digit_size: int,
    canvas: int = 64,
    seed: int = 0,
    threshold: float = 0.3,
) -> np.ndarray:
    """Each image binarised, cropped, resized to ``digit_size`` and placed at a uniform
    random position of a black ``canvas x canvas`` image.

    Args:
        images: ``(n, h, w)`` grey digits in [0, 1] (MNIST).
        digit_size: side of the placed digit.
        canvas: side of the output image.
        seed: seed of the positions.
        threshold: binarisation threshold after resampling.

    Returns:
        ``(n, canvas, canvas)`` uint8 images with values 0/1.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((2, 28, 28)); x[:, 8:20, 10:18] = 1.0
        >>> out = place_digits(x, digit_size=8, canvas=16, seed=0)
        >>> out.shape, int(out.max()), out.dtype.name
        ((2, 16, 16), 1, 'uint8')
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w), got shape {images.shape}")
    if not 1 <= digit_size <= canvas:
        raise ValueError(f"digit_size {digit_size} must be in 1..canvas={canvas}")
    rng = np.random.default_rng(seed)
    n = len(images)
    pos = rng.integers(0, canvas - digit_size + 1, size=(n, 2))
    out = np.zeros((n, canvas, canvas), np.uint8)
    for k in range(n):
        d = _square_crop(binarize(images[k]))
        d = resize_area(d, digit_size) > threshold
        i, j = pos[k]
        out[k, i : i + digit_size, j : j + digit_size] = d
    return out


def make_task(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    task: str,
    n: int | None = None,
    canvas: int = 64,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``"local"`` or ``"global"`` task built from the first ``n`` digits.

    Returns:
        ``(x, y)``: ``(n, canvas, canvas)`` uint8 0/1 images and int32 labels.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {tuple(TASKS)}")
    n = len(images) if n is None else min(int(n), len(images))
    x = place_digits(images[:n], digit_size=TASKS[task], canvas=canvas, seed=seed)
    return x, np.asarray(labels[:n], np.int32)
