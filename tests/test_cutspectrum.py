"""Full Schmidt spectrum of any partition (min-cut route) against the dense SVD oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tests._oracle import compare_spectra as _compare
from tests._oracle import dense_spectrum, random_convac
from tests._oracle import partitions_1d as _parts_1d
from tests._oracle import partitions_2d as _parts_2d
from tnjax import Partition, Tree, convac, to_dense
from tnjax._entanglement.cutspectrum import entanglement_entropy, schmidt_spectrum

CASES = {
    "binary8": (Tree.binary(8), _parts_1d(8), False),
    "win3": (Tree.from_windows(9, (3, 3)), _parts_1d(9), True),
    "win4x2": (Tree.from_windows(8, (4, 2)), _parts_1d(8), False),
    "quad4": (Tree.quad(4), _parts_2d((4, 4)), True),
    "mirror": (Tree.mirror(2, 4), _parts_2d((2, 4)), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_dense_svd(name):
    tree, parts, shared = CASES[name]
    channels = tuple(range(2, 2 + tree.depth))
    net = random_convac(len(name), tree, channels, shared=shared)
    a = np.asarray(to_dense(net))

    @jax.jit
    def all_parts(net):
        return [(schmidt_spectrum(net, p), schmidt_spectrum(net, p, classes="sum")) for p in parts]

    for part, (each, summed) in zip(parts, all_parts(net), strict=True):
        for y in range(2):
            _compare(each[y], dense_spectrum(a[y], part.side_a))
        _compare(summed[0], dense_spectrum(np.moveaxis(a, 0, -1), part.side_a))


def test_entropies_and_single_class():
    tree = Tree.from_windows(8, (2, 2, 2))
    net = convac(
        key=jax.random.key(1), tree=tree, m=3, channels=(2, 3, 4), n_classes=3, dtype=jnp.float64
    )
    a = np.asarray(to_dense(net))
    part = Partition.interleaved(8)

    @jax.jit
    def f(net):
        return (
            entanglement_entropy(net, part),
            entanglement_entropy(net, part, kind="renyi2", classes="each"),
            schmidt_spectrum(net, part, classes=1),
        )

    vn, r2, sp1 = f(net)
    ps = [dense_spectrum(a[y], part.side_a) for y in range(3)]
    vn_want = np.mean([-np.sum(p[p > 0] * np.log(p[p > 0])) for p in ps])
    np.testing.assert_allclose(vn, vn_want, rtol=1e-8)
    np.testing.assert_allclose(r2, [-np.log(np.sum(p**2)) for p in ps], rtol=1e-8)
    _compare(sp1[0], ps[1])


def test_gradient_vs_finite_differences():
    tree = Tree.from_windows(6, (3, 2))
    net = convac(
        key=jax.random.key(2), tree=tree, m=2, channels=(2, 3), n_classes=2, dtype=jnp.float64
    )
    part = Partition.from_sides([0, 2, 3], shape=6)
    f = jax.jit(lambda convs, out: entanglement_entropy(net.replace(convs=convs, out=out), part))
    check_grads(f, (net.convs, net.out), order=1, modes=("rev",))


def test_budget_error_names_the_rank():
    net = convac(key=jax.random.key(0), tree=Tree.binary(64), m=2, channels=4, n_classes=2)
    with pytest.raises(ValueError, match=r"min-cut rank 2\*\*32 is over max_rank=4096: use renyi2"):
        schmidt_spectrum(net, Partition.interleaved(64))
    with pytest.raises(ValueError, match="max_rank must be"):
        schmidt_spectrum(net, Partition.left_right(64), max_rank=0)
    with pytest.raises(ValueError, match="mean"):
        schmidt_spectrum(net, Partition.left_right(64), classes="mean")
    # raising the budget is honoured for a small cut: left/right of a binary tree is r = 4
    shape = jax.eval_shape(lambda n: schmidt_spectrum(n, Partition.left_right(64), max_rank=4), net)
    assert shape.shape == (2, 4)
