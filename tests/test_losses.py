"""Losses on log-scaled scores, against float64 formulas on the raw scores h."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tnjax import Scores, Tree, accuracy, born_nll, convac, predict, softmax_nll
from tnjax import contract as _contract

contract = jax.jit(_contract, static_argnames="scaled")


def _small_case(seed=0, dtype=jnp.float64):
    net = convac(
        key=jax.random.key(seed),
        tree=Tree.binary(8),
        m=3,
        channels=(4, 4, 5),
        n_classes=6,
        dtype=dtype,
    )
    feats = jax.random.uniform(jax.random.key(seed + 1), (11, 8, 3), dtype, minval=-1, maxval=1)
    labels = jax.random.randint(jax.random.key(seed + 2), (11,), 0, 6)
    return net, feats, labels


def _h64(net, feats):
    """Raw scores in float64 with no log-scaling: the oracle's input."""
    s = contract(net.astype(jnp.float64), feats.astype(jnp.float64), scaled=False)
    assert float(jnp.max(jnp.abs(s.log_scale))) == 0.0
    return np.asarray(s.scores)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_born_matches_direct_formula(dtype):
    net, feats, labels = _small_case(dtype=dtype)
    h = _h64(net, feats)
    p = h**2 / np.sum(h**2, axis=1, keepdims=True)
    want = -np.log(p[np.arange(len(labels)), np.asarray(labels)])
    got = born_nll(contract(net, feats.astype(dtype)), labels)
    rtol = 1e-12 if dtype == jnp.float64 else 2e-5
    np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("temperature", [1.0, 16.0])
def test_softmax_matches_direct_formula(temperature):
    net, feats, labels = _small_case(seed=3)
    h = _h64(net, feats)
    logits = temperature * h / np.linalg.norm(h, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    want = -logp[np.arange(len(labels)), np.asarray(labels)]
    got = softmax_nll(contract(net, feats), labels, temperature=temperature)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_centered_softmax_matches_direct_formula_and_has_no_uniform_answer():
    """Against the formula on raw float64 scores; through loss_fn and the train step's
    name; and scores along the all-ones direction plus a small input-dependent part
    still give confident logits (the uncentred loss reads them as near uniform)."""
    from tnjax._training.losses import loss_fn

    net, feats, labels = _small_case(seed=4)
    h = _h64(net, feats)
    c = h - h.mean(axis=1, keepdims=True)
    logits = 16.0 * c / np.linalg.norm(c, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    want = -logp[np.arange(len(labels)), np.asarray(labels)]
    s = contract(net, feats)
    for got in (softmax_nll(s, labels, centered=True), loss_fn("softmax_centered")(s, labels)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    flat = Scores(jnp.zeros(2), jnp.asarray([[1.0, 1.0, 1.001], [1.0, 1.001, 1.0]]))
    y = jnp.asarray([2, 1])
    assert float(jnp.max(softmax_nll(flat, y))) > np.log(3) - 0.01  # near uniform
    assert float(jnp.max(softmax_nll(flat, y, centered=True))) < 1e-6  # confident, right


def test_predict_and_accuracy_match_raw_scores():
    net, feats, labels = _small_case(seed=5)
    h = _h64(net, feats)
    s = contract(net, feats)
    np.testing.assert_array_equal(np.asarray(predict(s, loss="born")), np.argmax(np.abs(h), 1))
    np.testing.assert_array_equal(np.asarray(predict(s, loss="softmax")), np.argmax(h, 1))
    want = np.mean(np.argmax(np.abs(h), 1) == np.asarray(labels))
    assert float(accuracy(s, labels)) == pytest.approx(want)


def test_losses_ignore_log_scale():
    s = jnp.asarray([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]])
    y = jnp.asarray([1, 0])
    a, b = Scores(jnp.zeros(2), s), Scores(jnp.asarray([1e4, -3e4]), s)
    centered = lambda s, y: softmax_nll(s, y, centered=True)  # noqa: E731
    for f in (born_nll, softmax_nll, centered):
        np.testing.assert_array_equal(np.asarray(f(a, y)), np.asarray(f(b, y)))


def test_finite_at_1024_inputs_where_raw_scores_leave_float_range():
    """A 32x32 quad tree: h = exp(log_scale) * scores under/overflows in float32, the
    losses and their gradients stay finite."""
    tree = Tree.quad(32)
    assert tree.n_inputs == 1024
    net = convac(key=jax.random.key(0), tree=tree, m=2, channels=2, n_classes=3, dtype=jnp.float32)
    labels = jnp.asarray([0, 2])
    u = jax.random.uniform(jax.random.key(1), (2, 1024, 2), jnp.float32, minval=0.5)
    for scale, bad in ((4.0, np.isinf), (0.1, lambda v: v == 0)):
        s = contract(net, scale * u)
        assert np.all(bad(np.asarray(s.value()))), "raw scores expected out of float32 range"
        for f in (born_nll, softmax_nll):
            assert np.all(np.isfinite(np.asarray(f(s, labels))))

    @jax.jit
    def grads(n, feats):
        def obj(n):
            s = contract(n, feats)
            return jnp.mean(born_nll(s, labels)) + jnp.mean(softmax_nll(s, labels))

        return jax.grad(obj)(n)

    for scale in (4.0, 0.1):
        g = grads(net, scale * u)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(g))


def test_born_finite_when_a_score_is_exactly_zero():
    s = Scores(jnp.zeros(2), jnp.asarray([[0.0, 1.0], [1.0, 0.0]]))
    y = jnp.asarray([0, 0])
    loss = born_nll(s, y)
    assert np.all(np.isfinite(np.asarray(loss)))
    g = jax.grad(lambda v: jnp.sum(born_nll(Scores(jnp.zeros(2), v), y)))(s.scores)
    assert np.all(np.isfinite(np.asarray(g)))


def test_loss_input_errors():
    s = Scores(jnp.zeros(2), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="one integer label per sample"):
        born_nll(s, jnp.asarray([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        born_nll(s, jnp.asarray([0.0, 1.0]))
    with pytest.raises(TypeError, match="tnjax.Scores"):
        softmax_nll([[1.0, 2.0, 3.0]], jnp.asarray([0]))
    with pytest.raises(ValueError, match="unknown loss"):
        predict(s, loss="hinge")


def test_plain_arrays_are_logits_of_an_ordinary_network():
    import optax

    logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)) * 3, jnp.float32)
    y = jnp.asarray([0, 3, 1, 1, 2])
    want = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    np.testing.assert_allclose(softmax_nll(logits, y), want, rtol=1e-6)
    np.testing.assert_array_equal(predict(logits, loss="softmax"), jnp.argmax(logits, 1))
    # the Born rule on raw outputs: p_y = h_y^2 / sum h^2
    p = logits**2 / jnp.sum(logits**2, axis=1, keepdims=True)
    np.testing.assert_allclose(born_nll(logits, y), -jnp.log(p[jnp.arange(5), y]), rtol=1e-5)
