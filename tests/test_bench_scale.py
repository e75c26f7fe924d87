"""The scale benchmarks run in --quick mode: the cost curve, and the accelerator suite's
plumbing (steps, limits, logs, exit status) on CPU."""

import json
import os
import subprocess

import pytest

from tests._run import ROOT, run_quick_benchmark


def test_cost_curve_quick(tmp_path):
    out = run_quick_benchmark("cost_curve", tmp_path, timeout=600)
    assert set(out["curves"]) == {"binary", "shared"}
    for rows in out["curves"].values():
        for row in rows:
            tn = row["methods"]["tnjax"]
            assert tn["forward_s"] > 0 and tn["forward_backward_s"] > 0
            assert tn["first_result_s"] >= tn["compile_s"] > 0  # compile, then one call
            for name, rec in row["methods"].items():
                if "rel_err" in rec:  # every peer computes tnjax's scores
                    assert rec["rel_err"] < 1e-4, (name, rec)
            assert row["peak_gflops"] > 0


@pytest.mark.slow
def test_device_suite_quick_on_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(TNJAX_SUITE_STEPS="throughput", PYTHON=os.path.join(ROOT, ".venv", "bin", "python"))
    if not os.path.exists(env["PYTHON"]):
        env.pop("PYTHON")
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "device_suite.sh"), "--quick",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    log = (tmp_path / "device_suite.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "== training --tasks throughput" in log and "0 failed" in log
    assert json.loads((tmp_path / "training_throughput.json").read_text())["rows"]["convac"]
    assert "cost_curve" not in log  # only the steps asked for
