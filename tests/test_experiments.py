"""Experiments of the seeds' papers: tasks, models, partition families, and the three
benchmark scripts' quick modes (subprocess, JSON structure and sanity) and the notebook."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest
from flax import nnx

import tnjax
from experiments import (
    ARCHS,
    ReLUConvNet,
    capacity,
    channel_list,
    global_partitions,
    hidden_weight_count,
    local_partitions,
    make_task,
    mixed_node_floats,
    place_digits,
    resize_area,
    task_convac,
)
from tests._run import execute_notebook, run_quick_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.environ["TNJAX_MNIST_DIR"]  # tests/conftest.py points it at ../shared
HAS_MNIST = os.path.isfile(os.path.join(MNIST, "train-images-idx3-ubyte.gz"))
needs_mnist = pytest.mark.skipif(not HAS_MNIST, reason=f"no MNIST IDX files in {MNIST}")


# ---------------------------------------------------------------------------- library
@pytest.mark.parametrize("r", [1, 2, 3, 6, 12, 24])
def test_channel_lists_have_the_papers_weight_count(r):
    base, tip = channel_list("wide-base", r), channel_list("wide-tip", r)
    assert base == (4 * r, 4 * r, 2 * r, 2 * r, r, r) and tip == base[::-1]
    assert hidden_weight_count(base) == hidden_weight_count(tip) == 31 * r * r + 50 * r


@pytest.mark.parametrize("r", [1, 2])
def test_models_have_equal_weight_counts(r):
    counts = {}
    for arch in ARCHS:
        relu = ReLUConvNet(channel_list(arch, r), rngs=nnx.Rngs(0))
        net = task_convac(channel_list(arch, r), key=jax.random.key(0)).network
        assert relu.n_hidden_weights() == 31 * r * r + 50 * r
        # the ConvAC's network: the same 1x1 convs (shared) and output layer
        assert net.n_params() == 31 * r * r + 50 * r
        assert net.dims == (10, *channel_list(arch, r))
        counts[arch] = sum(int(x.size) for x in jax.tree.leaves(nnx.state(relu)))
    assert counts["wide-base"] == counts["wide-tip"]


def test_relu_convnet_and_convac_shapes():
    x = np.zeros((3, 64, 64), np.float32)
    x[:, 10:20, 30:40] = 1
    relu = ReLUConvNet(channel_list("wide-tip", 1), rngs=nnx.Rngs(0))
    assert relu(x).shape == (3, 10)
    model = task_convac(channel_list("wide-base", 1), key=jax.random.key(0))
    s = model(x)
    assert s.scores.shape == (3, 10) and np.all(np.isfinite(np.asarray(s.scores)))


def test_convac_background_is_neutral_at_init():
    model = task_convac(channel_list("wide-tip", 2), key=jax.random.key(1))
    for lvl, c in enumerate(model.network.convs):
        ones_in = np.ones(c.shape[0])
        vec = np.asarray(c)[0] if lvl == 0 else ones_in @ np.asarray(c)
        np.testing.assert_allclose(vec, np.ones(c.shape[1]), atol=1e-5)


def test_resize_area_preserves_mean():
    rng = np.random.default_rng(0)
    img = rng.random((20, 20))
    for size in (8, 32, 5):
        out = resize_area(img, size)
        assert out.shape == (size, size)
        np.testing.assert_allclose(out.mean(), img.mean(), rtol=1e-12)


def test_place_digits_is_deterministic_and_binary():
    x = np.zeros((5, 28, 28))
    x[:, 6:22, 10:16] = 1.0
    a = place_digits(x, digit_size=8, seed=3)
    b = place_digits(x, digit_size=8, seed=3)
    c = place_digits(x, digit_size=8, seed=4)
    assert a.shape == (5, 64, 64) and set(np.unique(a)) <= {0, 1}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for img in a:  # the digit fits in an 8x8 window
        rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
        assert rows[-1] - rows[0] < 8 and cols[-1] - cols[0] < 8


def test_place_digits_rejects_bad_sizes():
    with pytest.raises(ValueError, match="digit_size"):
        place_digits(np.zeros((1, 28, 28)), digit_size=70)
    with pytest.raises(ValueError, match="unknown task"):
        make_task(np.zeros((1, 28, 28)), np.zeros(1), task="medium")


@needs_mnist
def test_make_task_from_mnist():
    d = tnjax.load_mnist(MNIST)
    for task, side in (("local", 8), ("global", 32)):
        x, y = make_task(d.x_train, d.y_train, task=task, n=20, seed=0)
        assert x.shape == (20, 64, 64) and y.shape == (20,)
        span = [np.flatnonzero(img.any(1)) for img in x]
        assert all(s[-1] - s[0] < side for s in span)
        assert all(s[-1] - s[0] >= side // 4 for s in span)


def test_capacity_wide_base_local_wide_tip_global():
    tree = tnjax.Tree.quad(64)
    parts = local_partitions() + global_partitions()
    r = 4
    cap = {a: capacity(tree, (10, *channel_list(a, r)), parts) for a in ARCHS}
    # an aligned 4x4 block is one subtree: the cheapest of its copy tensor (r_1) and the
    # bond above its conv (r_2); left/right cuts near the root
    assert cap["wide-base"]["block 4x4 aligned"] == pytest.approx(np.log2(min(4 * r, 2 * r)))
    assert cap["wide-tip"]["block 4x4 aligned"] == pytest.approx(np.log2(min(r, 2 * r)))
    assert cap["wide-tip"]["left/right"] > cap["wide-base"]["left/right"]
    assert cap["wide-base"]["checkerboard"] > cap["wide-tip"]["checkerboard"]


def test_mixed_node_floats_counts_mixed_nodes():
    tree = tnjax.Tree.quad(8)
    dims = (2, 3, 3, 3)
    aligned = tnjax.Partition.block((8, 8), start=(0, 0), size=4)
    # a block that is one subtree: only its ancestors mix (the root: 3^4, no conv above)
    assert mixed_node_floats(tree, dims, aligned) == 2 * 3**4
    assert mixed_node_floats(tree, dims, tnjax.Partition.checkerboard((8, 8))) > 16 * 3**4


# ---------------------------------------------------------------------------- scripts
def _run(script, tmp_path, args=()):
    return run_quick_benchmark(script, tmp_path, env={"PYTHONUNBUFFERED": "1"}, args=args)


@needs_mnist
def test_inductive_bias_quick(tmp_path):
    out = _run("inductive_bias", tmp_path)
    assert out["mode"] == "quick"
    for r, row in out["param_counts"].items():
        r = int(r)
        assert row["wide-base"]["relu_hidden_weights"] == row["wide-tip"]["relu_hidden_weights"]
        assert row["wide-base"]["relu_hidden_weights"] == 31 * r * r + 50 * r
        assert row["wide-base"]["relu_total"] == row["wide-tip"]["relu_total"]
        assert row["wide-base"]["convac_total"] == row["wide-tip"]["convac_total"]
    assert {(u["family"], u["arch"]) for u in out["runs"]} == {
        (f, a) for f in ("relu", "convac") for a in ARCHS
    }
    n_test = out["settings"]["n_test"]
    for u in out["runs"]:  # a count of correct test samples
        assert u["test_accuracy"] * n_test == pytest.approx(round(u["test_accuracy"] * n_test))
        assert u["lr"] == out["settings"][f"lr_{u['family']}"]  # each family its own rate
        if u["family"] == "convac":
            assert [v["channels"] for v in u["levels"]] == u["channels"]
            assert all(0 <= v["input_dependence"] <= 1 for v in u["levels"])
    for s in out["summary"]:  # the summary is the mean of its runs
        acc = [u["test_accuracy"] for u in out["runs"]
               if (u["family"], u["task"], u["arch"], u["r"]) == (s["family"], s["task"],
                                                                  s["arch"], s["r"])]  # fmt: skip
        assert s["n_seeds"] == len(acc) > 0 and s["mean"] == pytest.approx(np.mean(acc))
    cap = out["capacity"]
    for arch in ARCHS:
        for bits in cap[arch].values():
            assert all(v >= 0 for v in bits.values())
    for e in out["entropies"]:
        for name, v in e["renyi2"].items():
            assert v is None or (
                v >= -1e-4 and v <= cap[e["arch"]][str(e["r"])][name] * np.log(2) + 1e-3
            )
    assert os.path.isdir(tmp_path / "inductive_bias_nets")
    # the saved networks give back the entropies computed right after training
    again = _run("inductive_bias", tmp_path, args=["--resume", "--recompute-entropies"])
    assert again["runs"] == out["runs"]
    for e, f in zip(out["entropies"], again["entropies"], strict=True):
        for name, v in e["renyi2"].items():
            w = f["renyi2"][name]
            assert (v is None) == (w is None) and (v is None or abs(v - w) <= 1e-9 * (1 + abs(v)))
    # the wide-base comparison joins two campaigns' runs (here one campaign twice)
    path = str(tmp_path / "inductive_bias.json")
    cmp = _run("wide_base", tmp_path / "wb", args=["--before", path, "--after", path])
    convac = {(u["r"], u["seed"]): u for u in out["runs"]
              if (u["family"], u["task"], u["arch"]) == ("convac", "global", "wide-base")}  # fmt: skip
    assert {(u["r"], u["seed"]) for u in cmp["rows"]} == set(convac)
    for u in cmp["rows"]:
        assert u["before"] == u["after"] == convac[u["r"], u["seed"]]["test_accuracy"]
        root = convac[u["r"], u["seed"]]["levels"][-1]["input_dependence"]
        assert u["root_input_dependence"] == {"before": root, "after": root}


@needs_mnist
def test_regularization_quick(tmp_path):
    out = _run("regularization", tmp_path)
    conds = {u["condition"] for u in out["runs"]}
    assert "none" in conds and len(conds) >= 2
    n_test = out["settings"]["n_test"]
    for u in out["runs"]:  # a count of correct test samples
        assert u["test_accuracy"] * n_test == pytest.approx(round(u["test_accuracy"] * n_test))
        assert u["local_entropy_bits"] >= -1e-4 and u["global_entropy_bits"] >= -1e-4
        if u["condition"] != "none":
            assert u["reg_weight"] != 0
    assert {"local", "global"} <= set(out["capacity_bits"])


def test_scaling_laws_quick(tmp_path):
    out = _run("scaling_laws", tmp_path)
    for g in out["block_growth"]:
        assert len(g["capacity_bits"]) == len(g["sizes"]) == len(g["renyi2_bits"])
        for s2, cap in zip(g["renyi2_bits"], g["capacity_bits"], strict=True):
            assert s2 is None or s2 <= cap + 1e-3  # entropy under the min-cut bound
    rows = out["depth_width"]
    assert rows and all(r["D"] is None or r["D"] >= 1 for r in rows)
    shallow = [r for r in rows if r["n_c"] == 1]
    assert all(r["D"] == 2 ** r["target_bits"] for r in shallow)  # one bond of dim D


# ---------------------------------------------------------------------------- notebook
def test_notebook_executes():
    _, text = execute_notebook("03_experiments")  # a failing cell raises
    for r in (6, 12, 24):  # both architectures have the same weight count, as printed
        w = 31 * r * r + 50 * r
        assert f"r={r}: wide-base {w}, wide-tip {w}  (31r^2+50r = {w})" in text, text[:2000]
    assert "slope of S2 vs side" in text  # the stored scaling_laws results, read back


def test_experiment_throughput_quick(tmp_path):
    out = _run("experiment_throughput", tmp_path)
    assert out["mode"] == "quick"
    assert {u["family"] for u in out["steps"]} == {"relu", "convac"}
    for u in out["steps"]:
        assert u["samples_per_s"] == pytest.approx(u["batch"] / u["step_s"])
        assert u["compile_s"] >= 0
    assert {u["family"] for u in out["loops"]} == {"convac"}  # quick: the ConvAC's loop only
    for u in out["loops"]:
        assert u["samples_per_s"] > 0 and u["loop_over_step"] > 0
    assert os.path.isfile(tmp_path / "experiment_throughput.png")


def test_level_diagnostics_of_the_root_match_the_contraction():
    """The root row against the root vector of tnjax.contract (an identity output layer):
    its participation ratio and its input dependence."""
    import jax.numpy as jnp

    from experiments import level_diagnostics

    model = task_convac((3, 4, 5), key=jax.random.key(1), canvas=8, noise=0.8)
    x = (np.random.default_rng(0).random((6, 8, 8)) < 0.4).astype(np.float32)
    rows = level_diagnostics(model, x)
    assert [u["channels"] for u in rows] == [3, 4, 5]
    net = model.network
    eye = tnjax.TreeTN(net.convs, jnp.eye(5, dtype=net.dtype), tree=net.tree, shared=True)
    u = np.asarray(tnjax.contract(eye, model.features(jnp.asarray(x))).scores, np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert rows[-1]["participation"] == pytest.approx(np.mean(1 / np.sum(u**4, axis=1)), rel=1e-4)
    dep = 1 - np.sum(np.mean(u, axis=0) ** 2)
    assert rows[-1]["input_dependence"] == pytest.approx(dep, rel=1e-3, abs=1e-6)
    assert 0 < dep < 1 and 1 <= rows[-1]["participation"] <= 5


@pytest.mark.optax_step
def test_train_classifier_continues_an_interrupted_run_from_its_checkpoint(tmp_path, monkeypatch):
    """Killed right after epoch 1's checkpoint, a second call finishes the run: the same
    parameters and history as an uninterrupted run, and the file is gone at the end."""
    import experiments._fit as fit_mod
    from experiments import train_classifier

    rng = np.random.default_rng(0)
    x, y = (rng.random((32, 8, 8)) < 0.3).astype(np.uint8), rng.integers(0, 10, 32)
    kw = dict(epochs=3, batch_size=8, progress=False, eval_batch_size=16)

    def model():
        return task_convac((3, 4, 5), key=jax.random.key(0), canvas=8)

    whole = train_classifier(model(), x, y, x[:16], y[:16], **kw)
    ckpt = str(tmp_path / "run.msgpack")
    real_save = fit_mod.save_checkpoint

    def save_then_die(path, tree, *, meta):
        real_save(path, tree, meta=meta)
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(model(), x, y, x[:16], y[:16], checkpoint=ckpt, **kw)
    assert os.path.isfile(ckpt)
    monkeypatch.setattr(fit_mod, "save_checkpoint", real_save)
    resumed = train_classifier(model(), x, y, x[:16], y[:16], checkpoint=ckpt, **kw)
    assert not os.path.exists(ckpt)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for a, b in zip(whole["history"], resumed["history"], strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    for a, b in zip(whole["model"].network.convs, resumed["model"].network.convs, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    monkeypatch.setattr(fit_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(model(), x, y, x[:16], y[:16], checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="remove it to start over"):  # another run's file
        train_classifier(model(), x, y, x[:16], y[:16], checkpoint=ckpt, **{**kw, "epochs": 4})
