"""Data parallelism on 4 simulated CPU devices (conftest sets
XLA_FLAGS=--xla_force_host_platform_device_count=4 before JAX starts)."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._run import run_quick_benchmark
from tnjax import Tree, batch_mesh, contract, convac, replicate, shard_batch

pytestmark = pytest.mark.skipif(
    jax.device_count() < 4, reason="needs 4 (simulated) devices: run under tests/conftest.py"
)


def test_mesh_and_clear_errors():
    mesh = batch_mesh()
    assert mesh.shape["batch"] == jax.device_count()
    with pytest.raises(ValueError, match="asked for 99 devices"):
        batch_mesh(99)
    with pytest.raises(ValueError, match="batch of 6 does not split over 4 devices"):
        shard_batch(np.ones((6, 3)), batch_mesh(4))


@pytest.mark.parametrize("n_devices", [2, 4])
def test_sharded_contraction_equals_single_device(n_devices):
    mesh = batch_mesh(n_devices)
    net = convac(
        key=jax.random.key(0),
        tree=Tree.quad(4),
        m=3,
        channels=(4, 5),
        n_classes=3,
        dtype=jnp.float64,
    )
    x = jax.random.normal(jax.random.key(1), (8, 16, 3), jnp.float64)
    xs = shard_batch(x, mesh)
    assert len(xs.sharding.device_set) == n_devices
    got = jax.jit(contract)(replicate(net, mesh), xs)
    want = jax.jit(contract)(net, x)
    assert len(got.scores.sharding.device_set) == n_devices  # stays sharded over the batch
    np.testing.assert_allclose(np.asarray(got.scores), np.asarray(want.scores), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got.log_scale), np.asarray(want.log_scale), rtol=1e-12)


@pytest.mark.optax_step
def test_data_parallel_train_step_equals_single_device():
    from tnjax import init_train_state, make_optimizer, make_train_step
    from tnjax.models import ModelConfig, make_model

    config = ModelConfig(input_shape=(4, 4), n_classes=3, m=4, channels=4)
    model = make_model(config, key=jax.random.key(0), dtype=jnp.float64)
    opt = make_optimizer(lr=1e-2, total_steps=10)
    graphdef, state = init_train_state(model, opt)
    step = jax.jit(make_train_step(graphdef, opt))
    x = jax.random.uniform(jax.random.key(2), (16, 4, 4), jnp.float64)
    y = jax.random.randint(jax.random.key(3), (16,), 0, 3)

    single, parallel = state, replicate(state, batch_mesh(4))
    for _ in range(3):
        single, m1 = step(single, (x, y))
        parallel, m4 = step(parallel, shard_batch((x, y), batch_mesh(4)))
    for a, b in zip(
        jax.tree_util.tree_leaves(single), jax.tree_util.tree_leaves(parallel), strict=True
    ):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(m4["loss"]), float(m1["loss"]), rtol=1e-10)


@pytest.mark.optax_step
def test_checkpoint_from_four_devices_restores_on_one(tmp_path):
    from tnjax import init_train_state, make_optimizer, make_train_step
    from tnjax._training.checkpoint import save_checkpoint
    from tnjax.models import ModelConfig, make_model

    config = ModelConfig(input_shape=(4, 4), n_classes=3, m=4, channels=4)
    model = make_model(config, key=jax.random.key(0), dtype=jnp.float32)
    opt = make_optimizer(lr=1e-2, total_steps=10)
    graphdef, state = init_train_state(model, opt)
    mesh = batch_mesh(4)
    step = jax.jit(make_train_step(graphdef, opt))
    x = jax.random.uniform(jax.random.key(2), (16, 4, 4), jnp.float32)
    y = jax.random.randint(jax.random.key(3), (16,), 0, 3)
    state, _ = step(replicate(state, mesh), shard_batch((x, y), mesh))
    path = str(tmp_path / "ckpt.msgpack")
    save_checkpoint(path, state.params)
    np.save(tmp_path / "x.npy", np.asarray(x))
    ref = np.asarray(jax.jit(lambda p: jax.tree_util.tree_leaves(p))(state.params)[0])
    np.save(tmp_path / "ref.npy", ref)

    script = textwrap.dedent(
        f"""
        import jax, jax.numpy as jnp, numpy as np
        from flax import nnx
        from tnjax._training.checkpoint import load_checkpoint
        from tnjax.models import ModelConfig, make_model
        assert jax.device_count() == 1, jax.devices()
        config = ModelConfig(input_shape=(4, 4), n_classes=3, m=4, channels=4)
        model = make_model(config, key=jax.random.key(9), dtype=jnp.float32)
        graphdef, params = nnx.split(model)
        params, _ = load_checkpoint({path!r}, params)
        first = np.asarray(jax.tree_util.tree_leaves(params)[0])
        np.testing.assert_array_equal(first, np.load({str(tmp_path / "ref.npy")!r}))
        model = nnx.merge(graphdef, params)
        print("scores", np.asarray(model(jnp.asarray(np.load({str(tmp_path / "x.npy")!r}))).scores).sum())
        """
    )
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "scores" in out.stdout


def test_scaling_benchmark_quick(tmp_path):
    rows = run_quick_benchmark("scaling", tmp_path, timeout=600)["rows"]
    assert [r["devices"] for r in rows] == [1, 2]
    assert all(r["train_samples_per_s"] > 0 for r in rows)


@pytest.mark.optax_step
def test_fit_on_four_devices_matches_one_device():
    from tnjax import dataset_from_arrays, fit
    from tnjax.models import ModelConfig, make_model

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 4, 4)).astype(np.float32)
    y = (x[:, :2].mean(axis=(1, 2)) > x[:, 2:].mean(axis=(1, 2))).astype(np.int32)
    data = dataset_from_arrays(x[:64], y[:64], x[64:], y[64:])
    config = ModelConfig(input_shape=(4, 4), n_classes=2, m=4, channels=4)
    runs = {}
    for n in (1, 4):
        model = make_model(config, key=jax.random.key(0), dtype=jnp.float64)
        runs[n] = fit(model, data, epochs=2, batch_size=16, n_devices=n, progress=False)
    a, b = (jax.tree_util.tree_leaves(runs[n].state.params) for n in (1, 4))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(v), np.asarray(u), rtol=1e-9, atol=1e-12)
    assert runs[4].test["accuracy"] == runs[1].test["accuracy"]
    with pytest.raises(ValueError, match="does not split over n_devices=4"):
        fit(make_model(config, key=jax.random.key(0)), data, batch_size=10, n_devices=4)


def test_entropy_functions_accept_replicated_networks():
    from tnjax import Partition, edge_entropies, min_cut, renyi2

    mesh = batch_mesh(4)
    net = convac(
        key=jax.random.key(3),
        tree=Tree.quad(4),
        m=2,
        channels=(3, 2),
        n_classes=2,
        dtype=jnp.float64,
    )
    rep = replicate(net, mesh)
    p = Partition.checkerboard((4, 4))
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda n: renyi2(n, p))(rep)), np.asarray(renyi2(net, p)), rtol=1e-12
    )
    for a, b in zip(edge_entropies(rep), edge_entropies(net), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
    assert min_cut(rep, p).rank == min_cut(net, p).rank
