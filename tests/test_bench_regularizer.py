"""The regularizer benchmarks run (``--quick``) and write the JSON and plots they promise.
No timing assertions: structure, every penalty finite, refusals named."""

import pytest

from tests._run import run_quick_benchmark


def test_quick_regularizer_benchmark(tmp_path):
    payload = run_quick_benchmark("regularizer", tmp_path, timeout=600)
    (res,) = payload["results"]
    rows = res["penalties"]
    assert {"none", "edges (von Neumann)", "edges (Renyi-2)", "left/right", "checkerboard"} <= set(
        rows
    )
    for name, row in rows.items():
        if "refused" in row:
            assert "max_bytes" in row["refused"]
            continue
        assert row["finite"], name
        assert row["step_s"] > 0 and row["compile_s"] > 0 and row["ratio"] > 0
        assert row["chained_steps"] >= 3
        if name != "none":
            assert row["reg_value"] >= 0
    assert rows["none"]["ratio"] == 1.0


def test_quick_regularized_training(tmp_path):
    payload = run_quick_benchmark("regularized_training", tmp_path, timeout=600)
    runs = {r["name"]: r for r in payload["runs"]}
    assert set(runs) == {"none", "penalised", "rewarded"}
    for r in runs.values():
        # a count of correct test digits, well above chance after three epochs
        assert r["test_accuracy"] * r["n_test"] == pytest.approx(
            round(r["test_accuracy"] * r["n_test"])
        )
        assert r["test_accuracy"] > 0.2, r
        assert all(v >= 0 for v in r["final_renyi2_nats"].values())
    assert all(v is not None for v in runs["penalised"]["penalty_per_epoch"])
    assert all(v is None for v in runs["none"]["penalty_per_epoch"])
    # the sign of the weight moves the entropy the asked way, from the same start
    lr = "left/right"
    assert runs["penalised"]["final_renyi2_nats"][lr] < runs["rewarded"]["final_renyi2_nats"][lr]
