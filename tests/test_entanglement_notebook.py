"""The entanglement notebook runs top to bottom; the benchmark runs in --quick mode."""

import json
import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_entanglement_notebook():
    path = os.path.join(ROOT, "notebooks", "entanglement.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    ).execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "min-cut rank" in text  # the budget error was shown, not raised
    assert "Traceback" not in text


def test_entanglement_benchmark_quick(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "entanglement.py")
    subprocess.run(
        [sys.executable, script, "--quick", "--out", str(tmp_path)],
        check=True,
        cwd=os.path.join(ROOT, "benchmarks"),
        timeout=600,
    )
    data = json.loads((tmp_path / "entanglement.json").read_text())
    assert (tmp_path / "entanglement.png").stat().st_size > 0
    routes = {row["route"] for row in data["scaling"]}
    assert routes == {"dense_svd", "sweep_all_edges", "renyi2_interleaved", "mincut_left_right"}
    for row in data["scaling"] + data["targets"]:
        assert row["median_s"] > 0 and row["compile_s"] > 0, row
