"""The entanglement notebook runs top to bottom; the benchmark runs in --quick mode."""

from tests._run import ROOT, execute_notebook, run_quick_benchmark


def test_entanglement_notebook():
    _, text = execute_notebook("02_entanglement", cwd=ROOT)  # raises on a failing cell
    assert "min-cut rank" in text  # the budget error was shown, not raised
    # the gradient steps on -penalty raise the entropy, as the notebook says they do
    line = next(x for x in text.splitlines() if x.startswith("mean Renyi-2 over the partitions:"))
    values = [float(v) for v in line.split("[", 1)[1].rstrip("]").split()]
    assert len(values) >= 3 and values[-1] > values[0] + 1e-3, values


def test_entanglement_benchmark_quick(tmp_path):
    data = run_quick_benchmark("entanglement", tmp_path, timeout=600)
    routes = {row["route"] for row in data["scaling"]}
    assert routes == {"dense_svd", "sweep_all_edges", "renyi2_interleaved", "mincut_left_right"}
    for row in data["scaling"] + data["targets"]:
        assert row["median_s"] > 0 and row["compile_s"] > 0, row
