"""Renyi-2 of any partition (four-copy contraction) against the dense SVD oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import tnjax
from tests._oracle import dense_spectrum, partitions_2d, random_convac
from tests._oracle import partitions_1d as _partitions_1d
from tnjax import Partition, Tree, convac, to_dense
from tnjax._entanglement.renyi2 import renyi2


def dense_renyi2(a, side):
    p = dense_spectrum(a, side)
    return -np.log(np.sum(p**2))


CASES = {  # (tree, partitions, channels, shared)
    "binary8": (Tree.binary(8), _partitions_1d(8), (3, 2, 4), False),
    "binary8-shared": (Tree.binary(8), _partitions_1d(8), (2, 3, 2), True),
    "win3": (Tree.from_windows(9, (3, 3)), _partitions_1d(9), (2, 3), True),
    "win4x2": (Tree.from_windows(8, (2, 4)), _partitions_1d(8), (3, 2), False),
    "quad4": (Tree.quad(4), partitions_2d((4, 4), interleaved=True), (2, 3), True),
    "mirror": (Tree.mirror(2, 4), partitions_2d((2, 4), interleaved=True), (3, 2), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_dense_svd(name):
    tree, parts, channels, shared = CASES[name]
    net = random_convac(list(CASES).index(name), tree, channels, shared=shared)
    a = np.asarray(to_dense(net))

    @jax.jit
    def all_parts(net):  # one compile for every partition of the case
        return [
            (renyi2(net, p, classes="each"), renyi2(net, p), renyi2(net, p.complement(), classes=0))
            for p in parts
        ]

    for part, (each, mean, comp) in zip(parts, all_parts(net), strict=True):
        want = [dense_renyi2(a[y], part.side_a) for y in range(2)]
        np.testing.assert_allclose(each, want, rtol=1e-8, err_msg=part.name)
        np.testing.assert_allclose(mean, np.mean(want), rtol=1e-8)
        np.testing.assert_allclose(comp, want[:1], rtol=1e-8)  # symmetric in the two sides


def test_sum_and_single_class():
    tree = Tree.from_windows(8, (2, 4))
    net = convac(
        key=jax.random.key(3), tree=tree, m=3, channels=(3, 4), n_classes=3, dtype=jnp.float64
    )
    a = np.asarray(to_dense(net))
    part = Partition.interleaved(8)
    got_sum, got_2 = jax.jit(
        lambda n: (renyi2(n, part, classes="sum"), renyi2(n, part, classes=2))
    )(net)
    want = dense_renyi2(np.moveaxis(a, 0, -1), part.side_a)
    np.testing.assert_allclose(got_sum, [want], rtol=1e-8)
    np.testing.assert_allclose(got_2, [dense_renyi2(a[2], part.side_a)], rtol=1e-8)
    # un-jitted gives the same
    np.testing.assert_allclose(renyi2(net, part, classes=2), got_2, rtol=1e-12)


def test_boolean_mask_and_scale():
    """A mask works like a Partition; N = 256 in float32 stays finite and matches float64."""
    tree = Tree.binary(256)
    net = convac(key=jax.random.key(4), tree=tree, m=2, channels=3, n_classes=2)
    mask = np.arange(256) % 2 == 0
    fn = jax.jit(lambda n: renyi2(n, mask))
    s32, s64 = fn(net), fn(net.astype(jnp.float64))
    assert np.isfinite(s32)
    np.testing.assert_allclose(s32, s64, rtol=1e-4)


def test_gradient_vs_finite_differences():
    tree = Tree.from_windows(6, (3, 2))
    part = Partition.from_sides([0, 2, 3], shape=6)
    nets = [
        convac(
            key=jax.random.key(5),
            tree=tree,
            m=2,
            channels=(2, 3),
            n_classes=2,
            shared=shared,
            dtype=jnp.float64,
        )
        for shared in (False, True)
    ]

    from tnjax import entropy_penalty

    # full-rank spectra only: at a rank-deficient one -p log p is not smooth (finite
    # differences converge as h log h) and the clipped gradient is the right choice there
    parts = [part, Partition.left_right(6)]

    @jax.jit
    def f(params):  # one compile: renyi2 unshared and shared, and the penalty (von Neumann)
        new = [n.replace(convs=c, out=o) for n, (c, o) in zip(nets, params, strict=True)]
        total = sum(renyi2(n, part) for n in new)
        return total + entropy_penalty(new[0], parts, kind="von_neumann")

    # float64 central differences with a small step: the shared net is strongly curved there
    check_grads(f, ([(n.convs, n.out) for n in nets],), order=1, modes=("rev",), eps=1e-6)


def test_bad_partition():
    net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=2, n_classes=2)
    with pytest.raises(ValueError, match="covers 8 inputs"):
        renyi2(net, Partition.interleaved(8))
    with pytest.raises(TypeError, match="boolean mask"):
        renyi2(net, [0, 1])
    with pytest.raises(ValueError, match="one side"):
        renyi2(net, np.ones(4, dtype=bool))


# ---------------------------------------------------------------------- the regularizer
def test_penalty_matches_its_parts():
    from tnjax import edge_entropies, entanglement_entropy, entropy_penalty

    tree = Tree.from_windows(6, (3, 2))
    net = convac(
        key=jax.random.key(7), tree=tree, m=2, channels=(2, 3), n_classes=2, dtype=jnp.float64
    )
    parts = [Partition.interleaved(6), Partition.from_sides([0, 4], shape=6)]

    @jax.jit
    def f(net):
        return (
            entropy_penalty(net, parts),
            entropy_penalty(net, parts, kind="von_neumann", classes=1),
            entropy_penalty(net, "edges", kind="renyi", alpha=0.5),
            entropy_penalty(net, parts[0], classes="sum"),
        )

    @jax.jit
    def parts_separately(net):
        return (
            [renyi2(net, p) for p in parts],
            [entanglement_entropy(net, p, classes=1)[0] for p in parts],
            edge_entropies(net, kind="renyi", alpha=0.5),
            renyi2(net, parts[0], classes="sum")[0],
        )

    p_r2, p_vn, p_edges, p_sum = f(net)
    r2, vn, ent, r2_sum = parts_separately(net)
    # eigenvalue round-off differs between two compilations: eigh's 1e-8 accuracy
    np.testing.assert_allclose(p_r2, np.mean(r2), rtol=1e-8)
    np.testing.assert_allclose(p_vn, np.mean(vn), rtol=1e-8)
    np.testing.assert_allclose(p_edges, np.mean(np.concatenate(ent)), rtol=1e-8)
    np.testing.assert_allclose(p_sum, r2_sum, rtol=1e-8)


def test_penalty_steps_move_entropy_the_asked_way():
    """Gradient descent on weight * penalty: weight > 0 lowers the entropy, < 0 raises it."""
    from tnjax import entropy_penalty

    tree = Tree.binary(8)
    net0 = convac(key=jax.random.key(8), tree=tree, m=2, channels=3, n_classes=2, dtype=jnp.float64)
    part = Partition.interleaved(8)
    value_and_grad = jax.jit(jax.value_and_grad(lambda n: entropy_penalty(n, part)))
    for weight in (1.0, -1.0):
        net = net0
        start, _ = value_and_grad(net)
        for _ in range(10):
            _, g = value_and_grad(net)
            net = jax.tree_util.tree_map(lambda x, gx, w=weight: x - 0.05 * w * gx, net, g)
        end, _ = value_and_grad(net)
        if weight > 0:
            assert end < start - 1e-3, (start, end)
        else:
            assert end > start + 1e-3, (start, end)


def test_penalty_bad_input():
    from tnjax import entropy_penalty

    net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=2, n_classes=2)
    with pytest.raises(ValueError, match="unknown entropy kind"):
        entropy_penalty(net, Partition.left_right(4), kind="tsallis")
    with pytest.raises(ValueError, match="scalar"):
        entropy_penalty(net, Partition.left_right(4), classes="each")
    with pytest.raises(ValueError, match="'edges'"):
        entropy_penalty(net, "all")
    with pytest.raises(ValueError, match="empty"):
        entropy_penalty(net, [])
    with pytest.raises(TypeError, match="Partition"):
        entropy_penalty(net, 3)


def test_rank_one_cut_is_exactly_zero_in_float32():
    # bonds of dimension 1 above the first level: every 2x2-aligned block is a product
    # state (dense oracle: rank 1), whatever the weights; float32 must not return noise
    tree = Tree.quad(8)
    net = convac(
        key=jax.random.key(4), tree=tree, m=3, channels=(4, 1, 2), n_classes=3, dtype=jnp.float32
    )
    block = Partition.block((8, 8), start=(0, 0), size=(4, 4))
    # the 8x8 dense tensor (3^64 entries) is out of reach: the rank is checked on a 4x4 twin
    small = convac(key=jax.random.key(4), tree=Tree.quad(4), m=2, channels=(1, 2), n_classes=2)
    small_block = Partition.block((4, 4), start=(0, 0), size=(2, 2))
    dense = np.asarray(to_dense(small.astype(jnp.float64)))
    assert np.all(dense_spectrum(dense[0], small_block.side_a)[1:] < 1e-12)  # rank 1
    for n, p in ((small, small_block), (net, block)):
        for classes in ("mean", "each", 0, "sum"):
            s2 = jax.jit(lambda n, c=classes, p=p: renyi2(n, p, classes=c))(n)
            np.testing.assert_array_equal(np.asarray(s2), 0.0)
        g = jax.grad(lambda n, p=p: renyi2(n, p))(n)
        assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(g))


def test_a_plan_is_a_value_passed_on_and_checked():
    """renyi2 runs a plan built once (as entropy_penalty does for its partitions) and
    refuses one built for another partition or class selection."""
    net = tnjax.convac(key=jax.random.key(0), tree=tnjax.Tree.quad(8), m=2, channels=3, n_classes=2,
                       dtype=jnp.float64)  # fmt: skip
    lr, cb = tnjax.Partition.left_right((8, 8)), tnjax.Partition.checkerboard((8, 8))
    for part, routes in ((lr, ("cut", "four_copy")), (cb, ("four_copy",))):
        for route in routes:
            plan = tnjax.renyi2_plan(net, part, route=route)
            np.testing.assert_allclose(tnjax.renyi2(net, part, plan=plan),
                                       tnjax.renyi2(net, part), rtol=1e-10)  # fmt: skip
    with pytest.raises(ValueError, match="another network structure, partition"):
        tnjax.renyi2(net, cb, plan=tnjax.renyi2_plan(net, lr))
    with pytest.raises(ValueError, match="another network structure, partition"):
        tnjax.renyi2(net, lr, classes="sum", plan=tnjax.renyi2_plan(net, lr))
