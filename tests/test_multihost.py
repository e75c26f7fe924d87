"""Multi-host training: two CPU processes joined by ``jax.distributed`` on localhost train
the same network as one process on the same global batches, each feeding only its half
of every batch, and only process 0 writes files."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    import jax
    jax.config.update("jax_enable_x64", True)
    import tnjax
    if nproc > 1:
        tnjax.initialize_multihost(coordinator_address=f"localhost:{port}",
                                   num_processes=nproc, process_id=pid)
    import jax.numpy as jnp
    import numpy as np
    from tnjax.models import ModelConfig, make_model

    fed = []  # rows each call of make_array_from_process_local_data got from this process
    orig = jax.make_array_from_process_local_data
    def spy(sharding, local, *args, **kw):
        fed.append(int(np.shape(local)[0]))
        return orig(sharding, local, *args, **kw)
    jax.make_array_from_process_local_data = spy

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(80, 4, 4))
    y = (x[:, :2].mean(axis=(1, 2)) > x[:, 2:].mean(axis=(1, 2))).astype(np.int32)
    data = tnjax.dataset_from_arrays(x[:64], y[:64], x[64:], y[64:])
    model = make_model(ModelConfig(input_shape=(4, 4), n_classes=2, m=4, channels=4),
                       key=jax.random.key(0), dtype=jnp.float64)
    res = tnjax.fit(model, data, epochs=2, batch_size=16, val_fraction=0.25,
                    augment=tnjax.random_shift(1), progress=False,
                    out_dir=os.path.join(out, f"run{pid}"))
    params = [np.asarray(p) for p in jax.tree_util.tree_leaves(res.state.params)]
    np.savez(os.path.join(out, f"params{nproc}_{pid}.npz"), *params)
    with open(os.path.join(out, f"info{nproc}_{pid}.json"), "w") as f:
        json.dump({"fed": fed, "test": res.test, "history": res.history}, f)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run(tmp_path, nproc):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(pid), str(nproc), port, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for pid in range(nproc)
    ]
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a training process did not finish in 240 s")
        assert p.returncode == 0, out[-3000:]


def _params(tmp_path, name):
    with np.load(tmp_path / name) as z:
        return [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
    _run(tmp_path, 1)
    _run(tmp_path, 2)
    one = _params(tmp_path, "params1_0.npz")
    for pid in (0, 1):
        two = _params(tmp_path, f"params2_{pid}.npz")
        for a, b in zip(one, two, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    info1 = json.loads((tmp_path / "info1_0.json").read_text())
    for pid in (0, 1):
        info = json.loads((tmp_path / f"info2_{pid}.json").read_text())
        # 2 epochs of 3 steps (x and y of 16 samples), a validation pass per epoch and a
        # test pass (x, y and mask of 16): each process fed half of every global batch
        assert info["fed"] == [8] * (2 * 3 * 2 + 2 * 3 + 3), info["fed"]
        assert info["test"] == pytest.approx(info1["test"], rel=1e-9)
        assert [h["val_loss"] for h in info["history"]] == pytest.approx(
            [h["val_loss"] for h in info1["history"]], rel=1e-9
        )
    assert info1["fed"] == []  # one process places whole batches with device_put
    assert (tmp_path / "run0" / "checkpoint.msgpack").exists()
    assert not (tmp_path / "run1").exists(), "process 1 wrote files"
