"""All-edges Schmidt spectra against the dense SVD oracle (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._oracle import compare_spectra as _compare
from tests._oracle import dense_spectrum
from tnjax import Tree, convac, to_dense
from tnjax._entanglement.sweep import edge_entropies, edge_spectra

# (tree, M, channels, shared): bond dims rise and fall so that every route of an edge is
# covered: the bond entering or leaving the conv (the smaller is used), and the dense
# subtree tensor while M**span is no larger than the bonds
TREES = {
    "binary8": (Tree.binary(8), 2, (3, 2, 4), False),
    "win3": (Tree.from_windows(9, (3, 3)), 3, (2, 3), True),
    "win4x2": (Tree.from_windows(8, (4, 2)), 2, (16, 16), False),  # dense subtrees, k=4
    "binary8-wide": (Tree.binary(8), 2, (4, 4, 4), True),  # dense subtrees, shared
    "quad4": (Tree.quad(4), 2, (4, 3), True),
    "grid2x6": (Tree.grid(2, 6, [(1, 3), (2, 2)]), 3, (2, 4), False),
    "mirror": (Tree.mirror(2, 4), 2, (2, 3), True),
}


def _np_vn(p):
    p = p[p > 0]
    return -np.sum(p * np.log(p))


@pytest.mark.parametrize("name", list(TREES))
def test_every_edge_matches_dense_svd(name):
    tree, m, channels, shared = TREES[name]
    key = jax.random.key(list(TREES).index(name))
    net = convac(
        key=key, tree=tree, m=m, channels=channels, n_classes=2, shared=shared, dtype=jnp.float64
    )
    a = np.asarray(to_dense(net))  # (Y, M, ..., M)
    sp = jax.jit(edge_spectra)(net)
    n_edges = 0
    for lvl, j, inputs in sp.edges():
        for y in range(2):
            _compare(sp.probs[lvl][y, j], dense_spectrum(a[y], inputs))
        n_edges += 1
    assert n_edges == sum(tree.level_sizes[:-1])
    norms = np.sum(a.reshape(2, -1) ** 2, axis=1)
    np.testing.assert_allclose(np.exp(sp.log_norm), norms, rtol=1e-10)


def test_sum_and_single_class():
    tree = Tree.from_windows(8, (2, 4))
    net = convac(
        key=jax.random.key(5), tree=tree, m=3, channels=(3, 4), n_classes=3, dtype=jnp.float64
    )
    a = np.asarray(to_dense(net))
    a_sum = np.moveaxis(a, 0, -1)  # class index last: on the "rest" side
    fn = jax.jit(edge_spectra, static_argnames="classes")
    sp_sum = fn(net, classes="sum")
    sp_1 = fn(net, classes=1)
    for lvl, j, inputs in sp_sum.edges():
        _compare(sp_sum.probs[lvl][0, j], dense_spectrum(a_sum, inputs))
        _compare(sp_1.probs[lvl][0, j], dense_spectrum(a[1], inputs))
    np.testing.assert_allclose(np.exp(sp_sum.log_norm[0]), np.sum(a**2), rtol=1e-10)


def test_entropies_and_class_mean():
    tree = Tree.binary(8)
    net = convac(key=jax.random.key(1), tree=tree, m=2, channels=3, n_classes=3, dtype=jnp.float64)
    a = np.asarray(to_dense(net))
    ent_each = jax.jit(edge_entropies, static_argnames="classes")(net, classes="each")
    ent_mean = jax.jit(edge_entropies)(net)
    for lvl in range(tree.depth):
        for j in range(tree.level_sizes[lvl]):
            side = tree.inputs_under(lvl, j)
            want = [_np_vn(dense_spectrum(a[y], side)) for y in range(3)]
            np.testing.assert_allclose(ent_each[lvl][:, j], want, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(ent_mean[lvl][j], np.mean(want), rtol=1e-8, atol=1e-10)


def test_scale_safe_for_many_inputs():
    """N = 256 in float32, where <A,A> is below float32's smallest subnormal: log_norm
    finite, spectra normalised, and the float32 entropies agree with a float64 run."""
    tree = Tree.binary(256)
    net = convac(key=jax.random.key(2), tree=tree, m=2, channels=4, n_classes=2, dtype=jnp.float32)
    fn = jax.jit(lambda n: (lambda sp: (sp, sp.entropy()))(edge_spectra(n)))
    sp, ent32 = fn(net)
    assert np.all(np.isfinite(sp.log_norm))
    assert float(sp.log_norm[0]) < np.log(np.finfo(np.float32).smallest_subnormal)
    for p in sp.probs:
        np.testing.assert_allclose(np.sum(np.asarray(p), -1), 1.0, rtol=1e-5)
    sp64, ent64 = fn(net.astype(jnp.float64))
    np.testing.assert_allclose(sp.log_norm, sp64.log_norm, rtol=1e-5)
    for s32, s64 in zip(ent32, ent64, strict=True):
        np.testing.assert_allclose(s32, s64, atol=2e-4)


def test_gradient_of_edge_entropies():
    from jax.test_util import check_grads

    tree = Tree.from_windows(6, (3, 2))
    net = convac(
        key=jax.random.key(3), tree=tree, m=2, channels=(2, 3), n_classes=2, dtype=jnp.float64
    )

    def f(convs, out):
        ent = edge_entropies(net.replace(convs=convs, out=out), kind="renyi2")
        return sum(jnp.sum(e) for e in ent)

    check_grads(jax.jit(f), (net.convs, net.out), order=1, modes=("rev",))


def test_gradient_finite_at_identity_init_with_sharing():
    """Weight sharing plus identity init gives degenerate spectra: grads stay finite."""
    tree = Tree.binary(8)
    net = convac(
        key=jax.random.key(4),
        tree=tree,
        m=3,
        channels=3,
        n_classes=2,
        shared=True,
        dtype=jnp.float64,
    )
    eye = [jnp.eye(3) for _ in net.convs]
    net = net.replace(convs=eye, out=jnp.ones((3, 2)))

    def f(n):
        return sum(jnp.sum(e) for e in edge_entropies(n))

    g = jax.jit(jax.grad(f))(net)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(g))


def test_eager_matches_jit():
    net = convac(
        key=jax.random.key(6), tree=Tree.binary(4), m=2, channels=2, n_classes=1, dtype=jnp.float64
    )
    eager, jitted = edge_spectra(net), jax.jit(edge_spectra)(net)
    for p, q in zip(eager.probs, jitted.probs, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


def test_bad_input():
    net = convac(key=jax.random.key(0), tree=Tree.binary(4), m=2, channels=2, n_classes=2)
    with pytest.raises(ValueError, match="classes"):
        edge_spectra(net, classes="all")
    with pytest.raises(ValueError, match="outside"):
        edge_spectra(net, classes=5)
    with pytest.raises(ValueError, match="mean"):
        edge_spectra(net, classes="mean")
    with pytest.raises(TypeError, match="TreeTN"):
        edge_spectra(np.ones(3))
