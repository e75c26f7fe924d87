"""Data loaders: embedded digits, IDX/MNIST files (valid, corrupt, truncated, missing),
download with checksum (file:// mirror and a patched fetch), user arrays."""

import gzip
import os
import shutil
import struct

import numpy as np
import pytest

import tnjax
from tnjax import DataError, dataset_from_arrays, load_digits, load_mnist, read_idx
from tnjax._training.data import MNIST_FILES, MNIST_SHA256, download_mnist

# the shared copy of the standard files (conftest.MNIST_DIR)
MNIST_DIR = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
)
HAVE_MNIST = os.path.isdir(MNIST_DIR)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"no MNIST files in {MNIST_DIR}")


def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.tobytes()


def test_load_digits():
    d = load_digits()
    assert d.x_train.shape == (1437, 8, 8) and d.x_test.shape == (360, 8, 8)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    # stratified: every class in both splits, in proportion
    np.testing.assert_array_less(0, np.bincount(d.y_test, minlength=10))
    again = load_digits()
    np.testing.assert_array_equal(d.x_test, again.x_test)


def test_read_idx_round_trip_gzip_and_raw(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(_idx_bytes(arr))
    gz = tmp_path / "a-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(_idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(str(raw)), arr)
    np.testing.assert_array_equal(read_idx(str(gz)), arr)


def test_read_idx_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    good = _idx_bytes(arr)
    cases = {
        "magic": (b"\x12\x34" + good[2:], "bad IDX magic number"),
        "truncated": (good[:-5], "is truncated"),
        "long": (good + b"\x00", "too long"),
        "header": (good[:6], "truncated inside its IDX header"),
    }
    for name, (data, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DataError, match=msg):
            read_idx(str(p))
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(DataError, match="corrupt or\\s+truncated|truncated"):
        read_idx(str(bad_gz))
    with pytest.raises(DataError, match="missing data file"):
        read_idx(str(tmp_path / "nope"))


@needs_mnist
def test_load_mnist_from_shared_files(monkeypatch):
    d = load_mnist(MNIST_DIR)
    assert d.x_train.shape == (60000, 28, 28) and d.x_test.shape == (10000, 28, 28)
    assert d.x_train.dtype == np.float32 and 0.0 == d.x_train.min() and d.x_train.max() == 1.0
    assert np.bincount(d.y_train).tolist()[:3] == [5923, 6742, 5958]  # the standard counts
    monkeypatch.setenv("TNJAX_MNIST_DIR", MNIST_DIR)
    np.testing.assert_array_equal(load_mnist().y_test, d.y_test)


def _copy_mnist(dst):
    os.makedirs(dst, exist_ok=True)
    for name in MNIST_FILES.values():
        shutil.copy(os.path.join(MNIST_DIR, name), os.path.join(dst, name))
        os.chmod(os.path.join(dst, name), 0o644)


@needs_mnist
def test_load_mnist_detects_checksum_mismatch_and_missing_file(tmp_path):
    _copy_mnist(tmp_path)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch for .*t10k-labels"):
        load_mnist(str(tmp_path))
    os.remove(p)
    with pytest.raises(DataError, match="missing MNIST file 't10k-labels-idx1-ubyte.gz'"):
        load_mnist(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(str(tmp_path / "elsewhere"))


def test_load_mnist_without_any_source_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TNJAX_MNIST_DIR", raising=False)
    with pytest.raises(DataError, match="TNJAX_MNIST_DIR.*download=True"):
        load_mnist(cache_dir=str(tmp_path))


def test_load_mnist_unverified_small_files(tmp_path):
    """Small IDX files with MNIST's names load with verify=False; inconsistent counts fail."""
    rng = np.random.default_rng(0)
    files = {
        "train_images": rng.integers(0, 256, (5, 28, 28)),
        "train_labels": rng.integers(0, 10, 5),
        "test_images": rng.integers(0, 256, (3, 28, 28)),
        "test_labels": rng.integers(0, 10, 3),
    }
    for key, arr in files.items():
        (tmp_path / MNIST_FILES[key]).write_bytes(gzip.compress(_idx_bytes(arr)))
    d = load_mnist(str(tmp_path), verify=False)
    np.testing.assert_allclose(d.x_test * 255, files["test_images"], atol=1e-4)
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(
        gzip.compress(_idx_bytes(files["test_labels"][:2]))
    )
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load_mnist(str(tmp_path), verify=False)


@needs_mnist
def test_download_from_file_url_into_cache(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    _copy_mnist(mirror)
    cache = tmp_path / "cache"
    folder = download_mnist(cache_dir=str(cache), base_url=mirror.as_uri())
    assert sorted(os.listdir(folder)) == sorted(MNIST_FILES.values())
    monkeypatch.delenv("TNJAX_MNIST_DIR", raising=False)
    d = load_mnist(cache_dir=str(cache))
    assert d.x_test.shape == (10000, 28, 28)


def test_download_rejects_bad_bytes_and_network_errors(tmp_path):
    def fetch_garbage(url, dest):
        with open(dest, "wb") as f:
            f.write(b"not mnist")

    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch for .*train-images"):
        download_mnist(
            cache_dir=str(cache), base_url="https://example.invalid/mnist", fetch=fetch_garbage
        )
    assert os.listdir(cache / "mnist") == []  # nothing half-downloaded is kept

    def fetch_offline(url, dest):
        raise OSError("network is unreachable")

    with pytest.raises(DataError, match="could not download .*network is unreachable"):
        download_mnist(cache_dir=str(cache), fetch=fetch_offline)


def test_download_skips_files_already_cached(tmp_path):
    calls = []

    def fetch(url, dest):
        calls.append(url)
        raise OSError("offline")

    folder = tmp_path / "mnist"
    folder.mkdir()
    # a cached file whose checksum matches is not fetched again: fake one by patching
    name = "train-images-idx3-ubyte.gz"
    (folder / name).write_bytes(b"x")
    old = MNIST_SHA256[name]
    try:
        MNIST_SHA256[name] = tnjax._training.data._sha256(str(folder / name))
        with pytest.raises(DataError, match="train-labels"):
            download_mnist(cache_dir=str(tmp_path), fetch=fetch)
    finally:
        MNIST_SHA256[name] = old
    assert len(calls) == 1 and calls[0].endswith("train-labels-idx1-ubyte.gz")


def test_dataset_from_arrays_validation():
    x = np.zeros((4, 2, 2))
    d = dataset_from_arrays(x, [0, 1, 2, 1], x[:2], [0, 2])
    assert d.n_classes == 3 and d.y_train.dtype == np.int32
    with pytest.raises(DataError, match="NaN or inf"):
        dataset_from_arrays(np.full((2, 2), np.nan), [0, 1], x[:1, 0], [0])
    with pytest.raises(DataError, match="one integer label per sample"):
        dataset_from_arrays(x, [0, 1], x, [0, 1, 0, 1])
    with pytest.raises(DataError, match="integer class labels"):
        dataset_from_arrays(x, [0.5, 1, 0, 1], x, [0, 1, 0, 1])
    with pytest.raises(DataError, match="negative label"):
        dataset_from_arrays(x, [0, -1, 0, 1], x, [0, 1, 0, 1])
    with pytest.raises(DataError, match="n_classes=2"):
        dataset_from_arrays(x, [0, 1, 2, 1], x, [0, 1, 0, 1], n_classes=2)
    with pytest.raises(DataError, match="train samples have shape"):
        dataset_from_arrays(x, [0, 1, 0, 1], np.zeros((2, 3)), [0, 1])


def test_split_validation_is_seeded_and_disjoint():
    x = np.arange(20)
    a = tnjax.split_validation(x, x, fraction=0.25, seed=1)
    b = tnjax.split_validation(x, x, fraction=0.25, seed=1)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert len(a[2]) == 5 and set(a[0]).isdisjoint(a[2]) and len(set(a[0]) | set(a[2])) == 20
    with pytest.raises(ValueError, match="fraction must be in"):
        tnjax.split_validation(x, x, fraction=1.5)
