"""Renyi-2 of any partition (four-copy contraction) against the dense SVD oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tnjax import Partition, Tree, convac, to_dense
from tnjax._renyi import renyi2


def dense_renyi2(a, side):
    rest = [i for i in range(a.ndim) if i not in side]
    mat = np.transpose(a, list(side) + rest).reshape(int(np.prod([a.shape[i] for i in side])), -1)
    s = np.linalg.svd(mat, compute_uv=False) ** 2
    p = s / s.sum()
    return -np.log(np.sum(p**2))


def _partitions_1d(n):
    rng = np.random.default_rng(n)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, n // 2, replace=False)] = True
    return [
        Partition.left_right(n),
        Partition.interleaved(n),
        Partition.block(n, start=1, size=3),
        Partition.from_mask(mask),
    ]


def _partitions_2d(shape):
    parts = [
        Partition.left_right(shape),
        Partition.top_bottom(shape),
        Partition.interleaved(shape),
        Partition.checkerboard(shape),
        Partition.block(shape, start=(0, 1), size=(2, 2)),
    ]
    if shape[1] % 2 == 0:
        parts.append(Partition.mirror_pairs(shape))
    return parts


CASES = {
    "binary8": (Tree.binary(8), _partitions_1d(8)),
    "win3": (Tree.from_windows(9, (3, 3)), _partitions_1d(9)),
    "win4x2": (Tree.from_windows(8, (2, 4)), _partitions_1d(8)),
    "quad4": (Tree.quad(4), _partitions_2d((4, 4))),
    "mirror": (Tree.mirror(2, 4), _partitions_2d((2, 4))),
}


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_dense_svd(name, shared):
    tree, parts = CASES[name]
    channels = tuple(range(2, 2 + tree.depth))
    net = convac(jax.random.key(len(name)), tree, m=2, channels=channels, n_classes=2,
                 shared=shared, dtype=jnp.float64)
    a = np.asarray(to_dense(net))
    fn = jax.jit(renyi2, static_argnames=("partition", "classes"))
    for part in parts:
        got = fn(net, part, classes="each")
        want = [dense_renyi2(a[y], part.side_a) for y in range(2)]
        np.testing.assert_allclose(got, want, rtol=1e-8, err_msg=part.name)
        np.testing.assert_allclose(fn(net, part), np.mean(want), rtol=1e-8)
        # symmetric in the two sides
        np.testing.assert_allclose(fn(net, part.complement(), classes="each"), want, rtol=1e-8)


def test_sum_and_single_class():
    tree = Tree.from_windows(8, (2, 4))
    net = convac(jax.random.key(3), tree, m=3, channels=(3, 4), n_classes=3, dtype=jnp.float64)
    a = np.asarray(to_dense(net))
    part = Partition.interleaved(8)
    got = jax.jit(renyi2, static_argnames=("partition", "classes"))(net, part, classes="sum")
    want = dense_renyi2(np.moveaxis(a, 0, -1), part.side_a)
    np.testing.assert_allclose(got, [want], rtol=1e-8)
    np.testing.assert_allclose(renyi2(net, part, classes=2), [dense_renyi2(a[2], part.side_a)],
                               rtol=1e-8)


def test_boolean_mask_and_scale():
    """A mask works like a Partition; N = 256 in float32 stays finite and matches float64."""
    tree = Tree.binary(256)
    net = convac(jax.random.key(4), tree, m=2, channels=3, n_classes=2)
    mask = np.arange(256) % 2 == 0
    fn = jax.jit(lambda n: renyi2(n, mask))
    s32, s64 = fn(net), fn(net.astype(jnp.float64))
    assert np.isfinite(s32)
    np.testing.assert_allclose(s32, s64, rtol=1e-4)


def test_gradient_vs_finite_differences():
    tree = Tree.from_windows(6, (3, 2))
    for shared in (False, True):
        net = convac(jax.random.key(5), tree, m=2, channels=(2, 3), n_classes=2, shared=shared,
                     dtype=jnp.float64)
        part = Partition.from_sides([0, 2, 3], shape=6)
        f = jax.jit(lambda convs, out, net=net: renyi2(net.replace(convs=convs, out=out), part))
        check_grads(f, (net.convs, net.out), order=1, modes=("rev",))


def test_bad_partition():
    net = convac(jax.random.key(0), Tree.binary(4), m=2, channels=2, n_classes=2)
    with pytest.raises(ValueError, match="covers 8 inputs"):
        renyi2(net, Partition.interleaved(8))
    with pytest.raises(TypeError, match="boolean mask"):
        renyi2(net, [0, 1])
    with pytest.raises(ValueError, match="one side"):
        renyi2(net, np.ones(4, dtype=bool))
