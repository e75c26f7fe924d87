"""The command line end to end: train (small), entropy on its checkpoint, bench --quick."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tnjax
from tnjax.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = [
        "train",
        "--epochs",
        "1",
        "--max-train",
        "256",
        "--m",
        "4",
        "--channels",
        "4",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--no-progress",
        "--seed",
        "1",
        "--background",
        "0",
    ]
    assert main(argv) == 0
    return out


def test_train_writes_everything_and_reports(trained, capsys):
    for name in (
        "metrics.json",
        "learning_curve.png",
        "checkpoint.msgpack",
        "entanglement.json",
        "min_cut_left_right.png",
        "min_cut_central_block.png",
    ):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["dataset"] == "digits" and metrics["n_train"] == 256
    # the reported accuracy is that of the saved model on the test split
    data = tnjax.load_digits()
    again = tnjax.evaluate(tnjax.load_model(str(trained)), data.x_test, data.y_test)
    assert metrics["test"]["accuracy"] == pytest.approx(again["accuracy"], abs=1e-12)
    rows = json.loads((trained / "entanglement.json").read_text())
    assert [r["partition"] for r in rows] == [
        "left/right",
        "top/bottom",
        "checkerboard",
        "central block",
    ]
    model = tnjax.load_model(str(trained))
    assert model.background == 0.0  # the flag reached the model and its checkpoint
    parts = tnjax.standard_partitions((8, 8))
    for row, p in zip(rows, parts, strict=True):
        assert row["min_cut_bits"] == tnjax.min_cut(model.network, p).log2_rank
        if row.get("renyi2_bits") is not None:  # entropy <= min-cut bound
            assert 0.0 <= row["renyi2_bits"] <= row["min_cut_bits"] + 1e-6


def test_entropy_command(trained, tmp_path, capsys):
    assert (
        main(
            [
                "entropy",
                str(trained),
                "--partitions",
                "left_right,checkerboard",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "left/right" in text and "checkerboard" in text and "top/bottom" not in text
    assert (tmp_path / "min_cut_checkerboard.png").is_file()
    with pytest.raises(SystemExit, match="missing checkpoint"):
        main(["entropy", str(tmp_path / "nothing.msgpack")])
    with pytest.raises(SystemExit, match="unknown partition 'diagonal'"):
        main(["entropy", str(trained), "--partitions", "diagonal", "--out", str(tmp_path)])


def test_train_argument_errors():
    with pytest.raises(SystemExit, match="--channels must be integers"):
        main(["train", "--channels", "wide"])
    with pytest.raises(SystemExit, match="grid windows are HxW pairs"):
        main(["train", "--geometry", "grid", "--windows", "2x2x2"])


@pytest.mark.slow
def test_bench_quick_runs_the_training_benchmark(tmp_path, capsys):
    assert main(["bench", "--list"]) == 0
    assert "training" in capsys.readouterr().out.split()
    assert main(["bench", "training", "--quick", "--out", str(tmp_path)]) == 0
    digits = json.loads((tmp_path / "training_digits.json").read_text())
    assert len(digits["test_accuracy"]) == 2
    seed0 = json.loads((tmp_path / "training_digits_seed0.json").read_text())
    assert digits["test_accuracy"][0] == seed0["test_accuracy"]
    for a in digits["test_accuracy"]:  # a count of correct test digits, not a made-up number
        assert a * seed0["n_test"] == pytest.approx(round(a * seed0["n_test"]), abs=1e-6)
    assert min(digits["train_time_s"]) > 0
    assert digits["seeds_at_or_above_0.98"] == sum(a >= 0.98 for a in digits["test_accuracy"])
    # the first seed's run is saved in full, the others only in the aggregate
    assert (tmp_path / "training_digits_seed0.json").is_file()
    assert not (tmp_path / "training_digits_seed1.json").exists()
    if os.path.isdir(os.environ["TNJAX_MNIST_DIR"]):  # MNIST: the same aggregate, one seed
        mnist = json.loads((tmp_path / "training_mnist.json").read_text())
        assert mnist["seeds"] == [0] and mnist["seeds_at_or_above_0.99"] in (0, 1)
        assert (tmp_path / "training_mnist_seed0.json").is_file()
    thr = json.loads((tmp_path / "training_throughput.json").read_text())
    assert set(thr["rows"]) == {"convac", "cnn"}
    assert (tmp_path / "training_throughput.png").is_file()
    with pytest.raises(SystemExit, match="unknown benchmarks"):
        main(["bench", "no_such_benchmark"])


def test_python_dash_m_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "tnjax", "--help"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(__file__),
        timeout=120,
    )
    assert r.returncode == 0 and "train" in r.stdout and "entropy" in r.stdout


def test_report_carries_the_plans_estimates_and_skips_over_budget():
    import jax

    net = tnjax.convac(
        key=jax.random.key(0), tree=tnjax.Tree.binary(8), m=2, channels=(3, 4, 5), n_classes=2
    )
    part = tnjax.Partition.interleaved(8)
    plan = tnjax.renyi2_plan(net, part)
    (row,) = tnjax.entanglement_report(net, [part], progress=False)
    assert (row["renyi2_route"], row["renyi2_flops"]) == (plan.route, plan.flops)
    assert row["renyi2_bits"] == pytest.approx(float(tnjax.renyi2(net, part)) / np.log(2))
    (row,) = tnjax.entanglement_report(net, [part], max_flops=plan.flops / 2, progress=False)
    assert row["renyi2_bits"] is None and "raise max_flops" in row["renyi2_bits_error"]
    (row,) = tnjax.entanglement_report(net, [part], max_bytes=plan.bytes / 1000, progress=False)
    assert row["renyi2_bits"] is None and "max_bytes" in row["renyi2_bits_error"]
