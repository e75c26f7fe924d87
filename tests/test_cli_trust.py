"""Training and the command line under real use: a signal saves and resumes to the same
result, the run folder is checked before any work, bad flags and divergence say so
with a non-zero exit, labels and inputs are checked against the model."""

import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tnjax
from tnjax.models import ModelConfig, make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset", "digits", "--m", "4", "--channels", "4", "--batch-size", "16",
         "--max-train", "512", "--no-report", "--seed", "3"]  # fmt: skip


def _cli(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.run([sys.executable, "-m", "tnjax", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _params(folder):
    model = tnjax.load_model(str(folder))
    return jax.tree_util.tree_leaves(model.network)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_resume_gives_the_same_run(tmp_path, sig):
    """SIGTERM: interrupted, resumed, compared with an uninterrupted run; SIGINT: the
    same interruption (the resume is the same code path)."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tnjax", "train", *SMALL, "--epochs", "40", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:  # a line per epoch when not on a terminal
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert f"interrupted by {signal.Signals(sig).name}" in last and "--resume" in last, last
    assert (out / "checkpoint.msgpack").exists()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    if sig == signal.SIGINT:
        return
    resumed = _cli("train", *SMALL, "--epochs", "40", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    full = _cli("train", *SMALL, "--epochs", "40", "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    for a, b in zip(_params(out), _params(tmp_path / "full"), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_run_folder_is_checked_before_any_work(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = _cli("train", *SMALL, "--epochs", "1", "--out", str(f))
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    run = tmp_path / "run"
    assert _cli("train", *SMALL, "--epochs", "1", "--out", str(run)).returncode == 0
    (run / "stale_plot.png").write_bytes(b"old")
    again = _cli("train", *SMALL, "--epochs", "1", "--out", str(run))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "--resume" in again.stderr
    over = _cli("train", *SMALL, "--epochs", "1", "--out", str(run), "--overwrite")
    assert over.returncode == 0, over.stderr[-2000:]
    assert not (run / "stale_plot.png").exists()
    nothing = _cli("train", *SMALL, "--epochs", "1", "--out", str(tmp_path / "new"), "--resume")
    assert nothing.returncode == 2 and "no checkpoint.msgpack" in nothing.stderr
    other = _cli("train", *SMALL, "--epochs", "1", "--out", str(run), "--resume", "--lr", "0.01")
    assert other.returncode == 2 and "lr" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--epochs", "-1"], "--epochs"),
        (["--stride", "0"], "--stride"),
        (["--lr", "0"], "--lr"),
        (["--max-train", "-10"], "--max-train"),
        (["--reg-weight", "0.1"], "--regularizer"),
        (["--regularizer", "edges"], "--reg-weight"),
        (["--reg-every", "0"], "--reg-every"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--download", "--data-dir", "x"], "--download"),
        (["--batch-size", "100000"], "batch_size"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, needle):
    from tnjax.cli import main

    try:
        rc = main(["train", *SMALL, *flags, "--out", str(tmp_path / "r")])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (rc, err[-1500:])
    assert "Traceback" not in err
    assert needle in err.strip().splitlines()[-1]


def _tiny(n_classes=10):
    cfg = ModelConfig(input_shape=(8, 8), n_classes=n_classes, m=3, channels=3)
    return make_model(cfg, key=jax.random.key(0))


@pytest.mark.optax_step
def test_divergence_stops_keeps_the_last_good_state_and_says_why(tmp_path):
    data = tnjax.load_digits()

    def blows_up(net):
        return jnp.where(net.out[0, 0] > -1e30, jnp.nan, 0.0)  # NaN on every step

    with pytest.raises(
        tnjax.TrainingDiverged, match="regularizer became nan at step 0.*reg_weight"
    ):
        tnjax.fit(_tiny(), data, epochs=1, batch_size=64, val_fraction=0, progress=False,
                  regularizer=blows_up, reg_weight=0.1, out_dir=str(tmp_path))  # fmt: skip
    # the checkpoint holds the state before the bad step: the initial parameters
    start = jax.tree_util.tree_leaves(_tiny().network)
    saved = tnjax.load_model(str(tmp_path))
    for a, b in zip(start, jax.tree_util.tree_leaves(saved.network), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_labels_and_inputs_are_checked_against_the_model():
    data = tnjax.load_digits()
    with pytest.raises(ValueError, match="label 9 is outside the model's classes 0..1"):
        tnjax.fit(_tiny(n_classes=2), data, epochs=1, progress=False)
    # a Dataset built by hand (not through dataset_from_arrays, which checks too)
    bad = data._replace(y_train=data.y_train - 1)
    with pytest.raises(ValueError, match="label -1"):
        tnjax.fit(_tiny(), bad, epochs=1, progress=False)
    x = data.x_train.copy()
    x[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        tnjax.fit(_tiny(), data._replace(x_train=x), epochs=1, progress=False)
    one = data._replace(y_train=0 * data.y_train, y_test=0 * data.y_test, n_classes=1)
    with pytest.raises(ValueError, match="n_classes >= 2"):
        tnjax.fit(_tiny(n_classes=1), one, epochs=1, progress=False)


def test_no_carriage_returns_off_a_terminal(tmp_path):
    r = _cli("train", *SMALL, "--epochs", "2", "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stderr and len(r.stderr) < 5000
    assert "epoch 1:" in r.stdout and "epoch 2:" in r.stdout


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_networks_keep_their_scores(dtype):
    from tnjax import Tree, contract, convac

    net = convac(key=jax.random.key(0), tree=Tree.binary(1024), m=2, channels=4, n_classes=3)
    half = net.astype(dtype)
    x = jax.random.uniform(jax.random.key(1), (5, 1024, 2), jnp.float32)
    got = contract(half, x.astype(dtype))
    want = contract(half.astype(jnp.float32), x.astype(dtype).astype(jnp.float32))
    assert got.scores.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(got.scores)) > 0)
    np.testing.assert_allclose(got.log_scale, want.log_scale, rtol=1e-6)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)


def test_partition_for_another_layout_is_refused():
    from tnjax import Partition, Tree, convac, min_cut, renyi2

    net = convac(key=jax.random.key(0), tree=Tree.quad(8), m=2, channels=2, n_classes=2)
    wrong = Partition.left_right((4, 16))  # 64 inputs too, another layout
    for fn in (renyi2, min_cut):
        with pytest.raises(ValueError, match=r"built for a \(4, 16\) layout .* \(8, 8\)"):
            fn(net, wrong)
    flat = Partition.from_mask(np.arange(64) < 32)  # a flat mask: inputs numbered row-major
    assert float(renyi2(net, flat)) >= 0


@pytest.mark.optax_step
def test_load_model_needs_no_optimizer(tmp_path):
    # the best parameters are read from the end of the checkpoint: no optimizer rebuilt
    res = tnjax.fit(_tiny(), tnjax.load_digits(), epochs=1, batch_size=128, clip=None,
                    val_fraction=0, progress=False, out_dir=str(tmp_path))  # fmt: skip
    loaded = tnjax.load_model(str(tmp_path))
    for a, b in zip(jax.tree_util.tree_leaves(res.model.network),
                    jax.tree_util.tree_leaves(loaded.network), strict=True):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.optax_step
def test_only_process_0_writes_files(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    res = tnjax.fit(_tiny(), tnjax.load_digits(), epochs=1, batch_size=128, val_fraction=0,
                    progress=False, out_dir=str(tmp_path / "run"))  # fmt: skip
    assert res.test is not None
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")


def test_loss_rise_pieces_are_pure_and_judge_a_rise():
    from tnjax._training.loop import LoopState, _loss_rise, _track_loss

    loop = LoopState()
    for loss in (0.7, 0.6, 0.5, 0.5, 0.45, 0.4):  # a run that learns
        loop = _track_loss(loop, loss)
    assert _loss_rise(loop, 4.0, step=6, hint="h") is None
    for _ in range(30):  # then the loss climbs far above its best and stays there
        loop = _track_loss(loop, 12.0)
    why = _loss_rise(loop, 4.0, step=36, hint="the learning rate")
    assert why.startswith("training loss rose from 0.") and "the learning rate" in why
    assert _loss_rise(loop, None, step=36, hint="h") is None  # switched off
    assert LoopState.from_json(loop.to_json()) == loop  # survives a checkpoint


@pytest.mark.optax_step
def test_a_loss_that_climbs_stops_the_run(tmp_path):
    """A finite loss that climbs far above its best stops the run, not only a NaN: here
    the batches turn upside down (the label flips with them) once the model has learnt."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(400, 4, 4)).astype(np.float32)
    y = (x[:, :2].mean(axis=(1, 2)) > x[:, 2:].mean(axis=(1, 2))).astype(np.int32)
    data = tnjax.dataset_from_arrays(x[:320], y[:320], x[320:], y[320:])
    calls = []

    def flips_later(rng, xb):
        calls.append(1)
        return xb[:, ::-1] if len(calls) > 200 else xb

    model = make_model(ModelConfig(input_shape=(4, 4), n_classes=2, m=4, channels=4),
                       key=jax.random.key(0))  # fmt: skip
    with pytest.raises(tnjax.TrainingDiverged, match="training loss rose from"):
        tnjax.fit(model, data, epochs=20, batch_size=16, lr=1e-2, val_fraction=0.0,
                  augment=flips_later, out_dir=str(tmp_path), progress=False)  # fmt: skip
    assert 200 < len(calls) < 260  # stopped within a few dozen bad steps
    assert (tmp_path / "checkpoint.msgpack").exists()
