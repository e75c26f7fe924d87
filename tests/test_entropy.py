"""Entropy functions of a spectrum and the safe-gradient eigenvalue routines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tnjax._entanglement.spectral import (
    entropy_of,
    geometric_measure,
    gram_pair_spectrum,
    gram_spectrum,
    renyi,
    schmidt_rank,
    von_neumann,
)


def _np_probs(lam):
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0)
    return lam / lam.sum(-1, keepdims=True)


def _np_vn(lam):
    p = _np_probs(lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), -1)


def _np_renyi(lam, a):
    p = _np_probs(lam)
    return np.log(np.sum(p**a, -1)) / (1 - a)


@pytest.fixture
def spectra():
    rng = np.random.default_rng(0)
    return rng.uniform(0.1, 3.0, size=(4, 7))


def test_values_match_numpy(spectra):
    np.testing.assert_allclose(von_neumann(spectra), _np_vn(spectra), rtol=1e-12)
    for a in (0.5, 2.0, 3.5):
        np.testing.assert_allclose(renyi(spectra, a), _np_renyi(spectra, a), rtol=1e-12)
    np.testing.assert_allclose(renyi(spectra, 1), _np_vn(spectra), rtol=1e-12)
    gm = -np.log(_np_probs(spectra).max(-1))
    np.testing.assert_allclose(geometric_measure(spectra), gm, rtol=1e-12)
    np.testing.assert_allclose(renyi(spectra, np.inf), gm, rtol=1e-12)
    # scale free
    np.testing.assert_allclose(von_neumann(1e7 * spectra), _np_vn(spectra), rtol=1e-12)


def test_special_spectra():
    assert float(von_neumann(jnp.ones(8))) == pytest.approx(np.log(8), rel=1e-14)
    assert float(renyi(jnp.ones(8), 2)) == pytest.approx(np.log(8), rel=1e-14)
    assert float(von_neumann(jnp.array([2.0, 0.0, 0.0]))) == 0.0
    assert float(von_neumann(jnp.zeros(3))) == 0.0
    # negative round-off is read as zero
    assert float(von_neumann(jnp.array([1.0, -1e-18]))) == 0.0
    lam = jnp.array([1.0, 1.0, 0.0, 0.0])
    assert float(renyi(lam, 0.5)) == pytest.approx(np.log(2), rel=1e-14)


def test_schmidt_rank():
    lam = jnp.array([[1.0, 0.3, 1e-20, 0.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(schmidt_rank(lam), [2, 4])
    np.testing.assert_array_equal(schmidt_rank(lam, rtol=0.5), [1, 4])
    assert int(jax.jit(schmidt_rank)(lam[0])) == 2
    assert int(schmidt_rank(jnp.zeros(3))) == 0
    with pytest.raises(ValueError, match="rtol"):
        schmidt_rank(lam, rtol=-1.0)


@pytest.mark.parametrize("kind", ["von_neumann", "renyi05", "renyi2", "geometric"])
def test_grads_generic(spectra, kind):
    fn = {
        "von_neumann": von_neumann,
        "renyi05": lambda x: renyi(x, 0.5),
        "renyi2": lambda x: renyi(x, 2),
        "geometric": geometric_measure,
    }[kind]
    check_grads(lambda x: jnp.sum(fn(x)), (jnp.asarray(spectra),), order=1, modes=("fwd", "rev"))


def test_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        renyi(jnp.ones(3), 0)
    with pytest.raises(ValueError, match="alpha"):
        renyi(jnp.ones(3), -1.0)
    with pytest.raises(ValueError, match="scalar"):
        von_neumann(jnp.float64(1.0))
    with pytest.raises(ValueError, match="unknown entropy kind"):
        entropy_of(jnp.ones(3), "shannon")
    with pytest.raises(ValueError, match="alpha"):
        entropy_of(jnp.ones(3), "renyi")
    with pytest.raises(ValueError, match="square"):
        gram_spectrum(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="same size"):
        gram_pair_spectrum(jnp.eye(2), jnp.eye(3))
    with pytest.raises(ValueError, match="do not broadcast"):
        gram_pair_spectrum(jnp.ones((3, 2, 2)), jnp.ones((4, 2, 2)))


def _rand_psd(rng, k, rank=None):
    x = rng.normal(size=(k, rank or k))
    return x @ x.T


def test_gram_spectrum_and_grad():
    rng = np.random.default_rng(1)
    g = _rand_psd(rng, 5)
    np.testing.assert_allclose(gram_spectrum(g), np.sort(np.linalg.eigvalsh(g))[::-1], rtol=1e-12)
    check_grads(gram_spectrum, (jnp.asarray(g),), order=1, modes=("fwd", "rev"))
    # the entropy of a Gram matrix: gradient against the closed form U diag(f') U^T
    f = lambda g: von_neumann(gram_spectrum(g))  # noqa: E731
    check_grads(jax.jit(f), (jnp.asarray(g),), order=1, modes=("fwd", "rev"))


def test_pair_spectrum_and_grad():
    rng = np.random.default_rng(2)
    g1, g2 = _rand_psd(rng, 4), _rand_psd(rng, 4)
    want = np.sort(np.linalg.eigvals(g1 @ g2).real)[::-1]
    np.testing.assert_allclose(gram_pair_spectrum(g1, g2), want, rtol=1e-10)
    check_grads(
        gram_pair_spectrum, (jnp.asarray(g1), jnp.asarray(g2)), order=1, modes=("fwd", "rev")
    )
    f = lambda a, b: renyi(gram_pair_spectrum(a, b), 2)  # noqa: E731
    check_grads(jax.jit(f), (jnp.asarray(g1), jnp.asarray(g2)), order=1, modes=("fwd", "rev"))
    # rank-deficient pair: spectrum still right
    g1 = _rand_psd(rng, 4, rank=2)
    want = np.sort(np.linalg.eigvals(g1 @ g2).real)[::-1]
    np.testing.assert_allclose(gram_pair_spectrum(g1, g2), want, atol=1e-10)


def test_grads_finite_at_degenerate_and_rank_deficient():
    kinds = ("von_neumann", "renyi2", "renyi", "geometric")

    @jax.jit
    def grads(g1, g2):
        out = []
        for kind in kinds:
            f = lambda g, k=kind: entropy_of(gram_spectrum(g), k, alpha=0.5)  # noqa: E731
            fp = lambda a, b, k=kind: entropy_of(gram_pair_spectrum(a, b), k, alpha=0.5)  # noqa: E731
            out.append((jax.grad(f)(g1), jax.grad(fp, argnums=(0, 1))(g1, g2)))
        return out

    eye = jnp.eye(4)
    low = jnp.diag(jnp.array([1.0, 1.0, 0.0, 0.0]))
    zero = jnp.zeros((4, 4))
    for g1, g2 in ((eye, eye), (low, eye), (zero, eye), (low, low), (eye, zero)):
        for kind, (g, (ga, gb)) in zip(kinds, grads(g1, g2), strict=True):
            for x in (g, ga, gb):
                assert np.all(np.isfinite(x)), (kind, g1, g2)


def test_degenerate_gradient_is_the_spectral_one():
    """At a degenerate point, grad f(G) = U diag(f'(lam)) U^T: compare with a finite
    difference along a direction that splits the degeneracy."""
    g = jnp.diag(jnp.array([2.0, 2.0, 1.0]))
    f = lambda g: von_neumann(gram_spectrum(g))  # noqa: E731
    grad = jax.grad(f)(g)
    rng = np.random.default_rng(3)
    d = rng.normal(size=(3, 3))
    d = d + d.T
    eps = 1e-6
    fd = (f(g + eps * d) - f(g - eps * d)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grad * d), fd, rtol=1e-6)
