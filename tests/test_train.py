"""Training loop: one trace, exact optimizer step, determinism, resume, early stopping."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import tnjax
from tnjax import (
    CheckpointError,
    contract,
    dataset_from_arrays,
    evaluate,
    fit,
    init_train_state,
    load_checkpoint,
    make_optimizer,
    make_train_step,
    save_checkpoint,
)
from tnjax.models import ModelConfig, make_model


def _data(n=96, seed=0, noisy_labels=False):
    """4x4 noise images; in class 1 the left half is brighter by 0.5."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    x = 0.5 * rng.random((n, 4, 4)).astype(np.float32)
    x[:, :, :2] += 0.5 * y[:, None, None]
    if noisy_labels:
        y = rng.integers(0, 2, n).astype(np.int32)
    k = (3 * n) // 4
    return dataset_from_arrays(x[:k], y[:k], x[k:], y[k:], n_classes=2)


def _model(seed=0, **kw):
    cfg = dict(input_shape=(4, 4), n_classes=2, representation="conv", m=3, channels=3)
    cfg.update(kw)
    return make_model(ModelConfig(**cfg), key=jax.random.key(seed))


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.mark.optax_step
def test_train_step_traces_once_and_matches_an_independent_adam_step():
    model = _model()
    opt = make_optimizer(lr=1e-2, total_steps=10, clip=None)
    graphdef, state = init_train_state(model, opt)
    traces = []

    def counted(s, b):
        traces.append(1)
        return make_train_step(graphdef, opt)(s, b)

    step = jax.jit(counted)
    data = _data()
    rng = np.random.default_rng(0)
    # independent oracle: optax adam on a float64 Born loss written from the raw scores
    params0 = nnx.split(model)[1]
    sched = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 1, 10, end_value=1e-4)
    ref_opt = optax.adamw(sched, weight_decay=0.0)
    ref_state = ref_opt.init(params0)
    ref_params = params0

    def ref_loss(params, x, y):
        m = nnx.merge(graphdef, params)
        h = contract(m.network, m.features(x), scaled=False).scores  # 16 inputs: representable
        logp = jnp.log(h**2) - jnp.log(jnp.sum(h**2, axis=1, keepdims=True))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    for _ in range(4):
        idx = rng.choice(len(data.x_train), 16, replace=False)
        batch = (jnp.asarray(data.x_train[idx]), jnp.asarray(data.y_train[idx]))
        state, metrics = step(state, batch)
        # the reported loss is the Born loss at the parameters before the step
        want = float(ref_loss(ref_params, *batch))
        assert float(metrics["loss"]) == pytest.approx(want, rel=1e-4)
        g = jax.grad(ref_loss)(ref_params, *batch)
        upd, ref_state = ref_opt.update(g, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, upd)
    assert len(traces) == 1
    assert int(state.step) == 4
    for a, b in zip(_leaves(state.params), _leaves(ref_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.optax_step
def test_fit_learns_writes_outputs_and_traces_once(tmp_path):
    data = _data(n=256)
    res = fit(
        _model(), data, epochs=8, batch_size=16, lr=1e-2, out_dir=str(tmp_path), progress=False
    )
    assert res.n_traces == 1
    assert len(res.history) == 8
    assert res.test["accuracy"] >= 0.95  # separable with a margin: easy for the network
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == res.test["accuracy"]
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, 9))
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "checkpoint.msgpack").is_file()
    direct = evaluate(res.model, data.x_test, data.y_test, batch_size=7)
    assert direct["accuracy"] == pytest.approx(res.test["accuracy"])


@pytest.mark.optax_step
def test_fit_is_deterministic_under_a_seed():
    data = _data()
    kw = dict(epochs=2, batch_size=16, progress=False, augment=tnjax.random_shift(1))
    a = fit(_model(), data, seed=3, **kw)
    b = fit(_model(), data, seed=3, **kw)
    c = fit(_model(), data, seed=4, **kw)
    for x, y in zip(_leaves(a.state), _leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(
        not np.array_equal(x, y) for x, y in zip(_leaves(a.state), _leaves(c.state), strict=True)
    )


@pytest.mark.optax_step
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    data = _data()
    kw = dict(epochs=3, batch_size=16, progress=False, seed=1, augment=tnjax.random_shift(1))
    k = 5  # mid-epoch: 4 steps per epoch
    full = fit(_model(), data, max_steps=2 * k, **kw)
    first = fit(_model(), data, max_steps=k, out_dir=str(tmp_path), **kw)
    assert int(first.state.step) == k and first.test is None
    resumed = fit(_model(seed=9), data, max_steps=2 * k, resume=str(tmp_path), **kw)
    assert int(resumed.state.step) == 2 * k
    for x, y in zip(_leaves(full.state), _leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)

    def untimed(history):
        return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in history]

    assert untimed(resumed.history) == untimed(full.history)


@pytest.mark.optax_step
def test_early_stopping_returns_the_best_epoch():
    data = _data(n=128, noisy_labels=True)  # nothing to learn: validation loss rises
    res = fit(
        _model(m=4, channels=8),
        data,
        epochs=30,
        batch_size=8,
        lr=3e-2,
        patience=2,
        val_fraction=0.25,
        progress=False,
    )
    assert len(res.history) < 30
    best = min(res.history, key=lambda h: h["val_loss"])
    assert all(h["val_loss"] >= best["val_loss"] for h in res.history[best["epoch"] :])
    assert len(res.history) == best["epoch"] + 2
    x_tr, y_tr, x_val, y_val = tnjax.split_validation(
        data.x_train, data.y_train, fraction=0.25, seed=0
    )
    got = evaluate(res.model, x_val, y_val)["loss"]
    assert got == pytest.approx(best["val_loss"], rel=1e-5)


@pytest.mark.optax_step
def test_regularizer_enters_the_objective():
    data = _data()

    def l2(net):
        return sum(jnp.sum(c**2) for c in net.convs)

    base = fit(_model(), data, epochs=2, batch_size=16, progress=False, val_fraction=0)
    reg = fit(
        _model(),
        data,
        epochs=2,
        batch_size=16,
        progress=False,
        val_fraction=0,
        regularizer=l2,
        reg_weight=1.0,
    )
    assert float(l2(reg.model.network)) < float(l2(base.model.network))
    model = _model()
    opt = make_optimizer(total_steps=1)
    graphdef, state = init_train_state(model, opt)
    step = jax.jit(make_train_step(graphdef, opt, regularizer=l2, reg_weight=0.5))
    _, metrics = step(state, (jnp.asarray(data.x_train[:8]), jnp.asarray(data.y_train[:8])))
    assert float(metrics["reg"]) == pytest.approx(float(l2(model.network)), rel=1e-6)


@pytest.mark.optax_step
def test_entropy_penalty_as_regularizer():
    """The same start trained with the penalty's weight > 0, = 0 and < 0: the entropy
    ends in that order, and the history logs the penalty each epoch."""
    data = _data()
    parts = [tnjax.Partition.left_right((4, 4))]

    def run(weight):
        res = fit(_model(), data, epochs=2, batch_size=16, progress=False, val_fraction=0,
                  regularizer=lambda net: tnjax.entropy_penalty(net, parts), reg_weight=weight)  # fmt: skip
        return res, float(tnjax.entropy_penalty(res.model.network, parts))

    (pen, s_pen), (base, s_base), (_, s_rew) = run(0.5), run(0.0), run(-0.5)
    assert s_pen < s_base < s_rew, (s_pen, s_base, s_rew)
    assert all("reg" in h for h in pen.history) and not any("reg" in h for h in base.history)
    assert np.isfinite(pen.history[-1]["train_loss"])


def test_checkpoint_errors(tmp_path):
    p = str(tmp_path / "c.msgpack")
    save_checkpoint(p, {"w": jnp.ones(3)}, meta={"a": 1})
    with pytest.raises(CheckpointError, match="float64\\[4\\]|float32\\[4\\]"):
        load_checkpoint(p, {"w": jnp.zeros(4)})
    with pytest.raises(CheckpointError, match="holds 1 arrays but the target has 2"):
        load_checkpoint(p, {"w": jnp.zeros(3), "v": jnp.zeros(1)})
    with pytest.raises(CheckpointError, match="missing checkpoint"):
        load_checkpoint(str(tmp_path / "nope"), {"w": jnp.zeros(3)})
    data = open(p, "rb").read()
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated|not a tnjax checkpoint"):
        load_checkpoint(str(bad), {"w": jnp.zeros(3)})
    with pytest.raises(CheckpointError, match="no model configuration"):
        tnjax.load_model(p)


@pytest.mark.optax_step
def test_resume_with_other_settings_is_refused(tmp_path):
    data = _data()
    fit(_model(), data, epochs=1, batch_size=16, out_dir=str(tmp_path), progress=False)
    with pytest.raises(CheckpointError, match="same data, batch_size and epochs"):
        fit(_model(), data, epochs=2, batch_size=16, resume=str(tmp_path), progress=False)


def test_fit_input_errors():
    data = _data()
    with pytest.raises(TypeError, match="tnjax.Dataset"):
        fit(_model(), (data.x_train, data.y_train), progress=False)
    with pytest.raises(ValueError, match="batch_size=1000 must be in"):
        fit(_model(), data, batch_size=1000, progress=False)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(_model(), data, loss="hinge", progress=False)
    with pytest.raises(ValueError, match="checkpoint_every needs out_dir"):
        fit(_model(), data, checkpoint_every=2, progress=False)
    with pytest.raises(ValueError, match="patience needs a validation split"):
        fit(_model(), data, patience=2, val_fraction=0, progress=False)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_optimizer(total_steps=5, schedule="step")


@pytest.mark.optax_step
def test_train_step_runs_unchanged_data_parallel():
    """The pure step jitted over a batch-sharded Mesh (params replicated) matches the
    single-device step."""
    n = min(jax.device_count(), 4)
    if n < 2:
        pytest.skip("needs several (simulated) devices")
    mesh = tnjax.batch_mesh(n)
    model = _model()
    opt = make_optimizer(lr=1e-2, total_steps=10)
    graphdef, state = init_train_state(model, opt)
    step = make_train_step(graphdef, opt)
    data = _data()
    batch = (jnp.asarray(data.x_train[:16]), jnp.asarray(data.y_train[:16]))
    ref_state, ref_metrics = jax.jit(step)(state, batch)
    sharded = tuple(tnjax.shard_batch(b, mesh) for b in batch)
    par_state, par_metrics = jax.jit(step)(tnjax.replicate(state, mesh), sharded)
    for a, b in zip(_leaves(ref_state), _leaves(par_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert float(par_metrics["loss"]) == pytest.approx(float(ref_metrics["loss"]), rel=1e-6)
