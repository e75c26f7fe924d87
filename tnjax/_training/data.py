"""Datasets: the embedded 8x8 digits, MNIST from IDX files, or arrays you pass in.

Every loader returns a :class:`Dataset` of float32 images in [0, 1] and int32 labels.
Files are checked: a missing, truncated or corrupt file (bad IDX header, SHA-256
mismatch) raises :class:`DataError` naming the file and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "MNIST_SHA256",
    "dataset_from_arrays",
    "download_mnist",
    "load_digits",
    "load_mnist",
    "random_shift",
    "read_idx",
    "split_validation",
]


class DataError(ValueError):
    """A data file or array is missing, truncated, corrupt or malformed."""


class Dataset(NamedTuple):
    """Train and test splits: images ``(n, *shape)`` float32 in [0, 1], labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str = "arrays"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
#: SHA-256 of the standard gzip-compressed MNIST IDX files.
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
}
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_ENV = "TNJAX_MNIST_DIR"


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/tnjax`` (default ``~/.cache/tnjax``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tnjax")


# ---------------------------------------------------------------------- arrays
def dataset_from_arrays(
    x_train, y_train, x_test, y_test, *, n_classes: int | None = None, name: str = "arrays"
) -> Dataset:
    """A :class:`Dataset` from your arrays, validated.

    Args:
        x_train: training inputs ``(n, *shape)``, finite.
        y_train: their integer labels ``(n,)`` in ``0..n_classes-1``.
        x_test: test inputs, the same shape per sample as ``x_train``.
        y_test: their labels.
        n_classes: number of classes (default: ``max label + 1``).

    Examples:
        >>> import numpy as np
        >>> from tnjax import dataset_from_arrays
        >>> d = dataset_from_arrays(np.zeros((4, 2, 2)), [0, 1, 0, 1], np.ones((2, 2, 2)), [1, 0])
        >>> d.input_shape, d.n_classes
        ((2, 2), 2)
    """
    xs, ys = [], []
    for what, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim < 2:
            raise DataError(f"x_{what} has shape {x.shape}: give (n_samples, *input_shape)")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"x_{what} must be real numbers, got dtype {x.dtype}")
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError(f"x_{what} holds NaN or inf values: clean or impute them first")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"y_{what} has shape {y.shape} but x_{what} has {len(x)} samples: "
                "give one integer label per sample"
            )
        if len(x) == 0:
            raise DataError(f"x_{what} is empty")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise DataError(f"y_{what} must be integer class labels, got dtype {y.dtype}")
        if y.min() < 0:
            raise DataError(f"y_{what} has a negative label {int(y.min())}: labels are 0..n-1")
        xs.append(x)
        ys.append(y.astype(np.int32))
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(
            f"train samples have shape {xs[0].shape[1:]} but test samples {xs[1].shape[1:]}"
        )
    top = int(max(ys[0].max(), ys[1].max())) + 1
    if n_classes is None:
        n_classes = top
    elif top > n_classes:
        raise DataError(
            f"a label is {top - 1} but n_classes={n_classes}: labels are 0..n_classes-1"
        )
    return Dataset(xs[0], ys[0], xs[1], ys[1], int(n_classes), name)


def split_validation(
    x, y, *, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random split ``(x_train, y_train, x_val, y_val)`` holding out ``fraction``.

    Examples:
        >>> import numpy as np
        >>> from tnjax import split_validation
        >>> xt, yt, xv, yv = split_validation(np.zeros((10, 3)), np.arange(10), fraction=0.2)
        >>> len(xt), len(xv)
        (8, 2)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"fraction={fraction} of {n} samples leaves an empty split")
    perm = np.random.default_rng(seed).permutation(n)
    tr, va = perm[n_val:], perm[:n_val]
    return x[tr], y[tr], x[va], y[va]


# ---------------------------------------------------------------------- digits
def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's embedded 8x8 handwritten digits (1797 images, no download needed),
    pixels scaled to [0, 1], split into train and test with a fixed seed (stratified).

    Examples:
        >>> from tnjax import load_digits
        >>> d = load_digits()
        >>> d.x_train.shape, d.x_test.shape, d.n_classes
        ((1437, 8, 8), (360, 8, 8), 10)
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    raw = sk_digits()
    x = (raw.images / 16.0).astype(np.float32)
    y = raw.target.astype(np.int32)
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Dataset(xtr, ytr, xte, yte, 10, "digits")


# ---------------------------------------------------------------------- IDX / MNIST
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw), checking its header and length.

    Raises:
        DataError: missing file, bad magic number, truncated or over-long data,
            corrupt gzip stream.

    Examples:
        >>> import os
        >>> from tnjax import read_idx
        >>> d = os.environ.get("TNJAX_MNIST_DIR")
        >>> read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).shape if d else (10000,)
        (10000,)
    """
    if not os.path.isfile(path):
        raise DataError(f"missing data file {path!r}")
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(
            f"{path!r} is not a readable (gzip) IDX file ({e}): the file is corrupt or "
            "truncated; delete it and download it again"
        ) from e
    if len(data) < 4:
        raise DataError(f"{path!r} is truncated: {len(data)} bytes, shorter than an IDX header")
    zero, code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path!r} has a bad IDX magic number {data[:4].hex()}: it is not an IDX file "
            "(expected 0000 08 0N for unsigned bytes); replace it with the original file"
        )
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path!r} is truncated inside its IDX header")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    want = int(np.prod(dims)) * dtype.itemsize
    got = len(data) - 4 - 4 * ndim
    if got != want:
        raise DataError(
            f"{path!r} is {'truncated' if got < want else 'too long'}: its header announces "
            f"shape {dims} ({want} bytes of data) but it holds {got}; download it again"
        )
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_file(directory: str, name: str) -> str:
    for cand in (name, name[:-3]):  # gzip-compressed or not
        p = os.path.join(directory, cand)
        if os.path.isfile(p):
            return p
    raise DataError(
        f"missing MNIST file {name!r} in {directory!r}: put the four IDX files there "
        f"({', '.join(MNIST_FILES.values())}), or call load_mnist(download=True)"
    )


def load_mnist(
    path: str | None = None,
    *,
    download: bool = False,
    cache_dir: str | None = None,
    verify: bool = True,
) -> Dataset:
    """MNIST (60k train / 10k test, 28x28) from the standard IDX files.

    Where from: ``path``; else ``$TNJAX_MNIST_DIR``; else the cache
    (``~/.cache/tnjax/mnist``), downloading into it when ``download=True``.

    Args:
        path: folder with the four IDX files (``.gz`` or not).
        download: fetch missing files into the cache (needs internet), checked by SHA-256.
        cache_dir: cache folder (default ``~/.cache/tnjax``).
        verify: check each ``.gz`` file's SHA-256 against the known value (and against
            a ``SHA256SUMS`` file in the folder, when there is one).

    Raises:
        DataError: missing, truncated or corrupt file, checksum mismatch, inconsistent
            image / label counts.

    Examples:
        >>> import os
        >>> from tnjax import load_mnist
        >>> d = load_mnist() if os.environ.get("TNJAX_MNIST_DIR") else None
        >>> d.x_train.shape if d else (60000, 28, 28)
        (60000, 28, 28)
    """
    if path is None:
        path = os.environ.get(MNIST_ENV)
    if path is None:
        path = os.path.join(cache_dir or default_cache_dir(), "mnist")
        missing = [n for n in MNIST_FILES.values() if not os.path.isfile(os.path.join(path, n))]
        if missing:
            if not download:
                raise DataError(
                    f"MNIST not found: no path given, ${MNIST_ENV} unset, and the cache {path!r} "
                    f"lacks {missing}. Pass path=..., set ${MNIST_ENV}, or load_mnist(download=True)"
                )
            download_mnist(cache_dir=cache_dir)
    if not os.path.isdir(path):
        raise DataError(f"MNIST folder {path!r} does not exist")
    sums = _read_sums(os.path.join(path, "SHA256SUMS"))
    arrays = {}
    for key, name in MNIST_FILES.items():
        f = _find_file(path, name)
        if verify and f.endswith(".gz"):
            digest = _sha256(f)
            want = sums.get(name, MNIST_SHA256[name])
            if digest != want:
                raise DataError(
                    f"checksum mismatch for {f!r}: SHA-256 {digest} but expected {want}. The file "
                    "is corrupt or not the standard MNIST file; delete it and download it again "
                    "(or pass verify=False for a modified copy)"
                )
        arrays[key] = read_idx(f)
    xs, ys = {}, {}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(
                f"MNIST {split} images have shape {x.shape} and labels {y.shape}: expected "
                "(n, 28, 28) and (n,); the files are swapped or not MNIST"
            )
        if len(x) != len(y):
            raise DataError(f"MNIST {split} has {len(x)} images but {len(y)} labels")
        if y.size and int(y.max()) > 9:
            raise DataError(f"MNIST {split} labels go up to {int(y.max())}: not digit labels")
        xs[split] = (x.astype(np.float32) / 255.0).astype(np.float32)
        ys[split] = y.astype(np.int32)
    return Dataset(xs["train"], ys["train"], xs["test"], ys["test"], 10, "mnist")


def _read_sums(path: str) -> dict[str, str]:
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _urlopen_fetch(url: str, dest: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def download_mnist(
    *,
    cache_dir: str | None = None,
    base_url: str = MNIST_URL,
    fetch: Callable[[str, str], None] | None = None,
) -> str:
    """Download the four MNIST IDX files into ``<cache_dir>/mnist``, each checked against
    its SHA-256 before it is kept (a partial or wrong download never lands in the cache).

    Args:
        cache_dir: cache folder (default ``~/.cache/tnjax``).
        base_url: folder URL holding the files (``https://...``, or ``file://`` for a mirror).
        fetch: ``fetch(url, dest_path)`` (default: ``urllib``); replaceable for tests.

    Returns:
        The folder holding the files.
    """
    fetch = fetch or _urlopen_fetch
    folder = os.path.join(cache_dir or default_cache_dir(), "mnist")
    os.makedirs(folder, exist_ok=True)
    for name in MNIST_FILES.values():
        dest = os.path.join(folder, name)
        if os.path.isfile(dest) and _sha256(dest) == MNIST_SHA256[name]:
            continue
        url = base_url.rstrip("/") + "/" + name
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        try:
            try:
                fetch(url, tmp)
            except OSError as e:
                raise DataError(
                    f"could not download {url} ({e}): check your connection, or download the "
                    f"files by hand into {folder!r} or set ${MNIST_ENV}"
                ) from e
            digest = _sha256(tmp)
            if digest != MNIST_SHA256[name]:
                raise DataError(
                    f"checksum mismatch for {url}: SHA-256 {digest} but expected "
                    f"{MNIST_SHA256[name]}; the download is corrupt or truncated, try again"
                )
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return folder


def random_shift(max_shift: int = 2) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """A data augmentation for :func:`fit`: translate each image by a random integer
    offset in ``[-max_shift, max_shift]`` along each axis, filling with zeros.

    Examples:
        >>> import numpy as np
        >>> from tnjax import random_shift
        >>> x = np.zeros((1, 5, 5)); x[0, 2, 2] = 1
        >>> y = random_shift(1)(np.random.default_rng(0), x)
        >>> y.shape, float(y.sum())
        ((1, 5, 5), 1.0)
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")

    def augment(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        s = max_shift
        if s == 0:
            return x
        b, d = x.shape[0], x.ndim - 1
        xp = np.pad(x, [(0, 0)] + [(s, s)] * d)
        offs = rng.integers(0, 2 * s + 1, size=(b, d))
        out = np.empty_like(x)
        for i in range(b):
            sl = tuple(slice(o, o + n) for o, n in zip(offs[i], x.shape[1:], strict=True))
            out[i] = xp[(i, *sl)]
        return out

    return augment
