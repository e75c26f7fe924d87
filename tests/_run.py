"""Running the project's scripts and notebooks from tests: benchmarks in ``--quick``
mode in a subprocess, notebooks top to bottom with nbclient."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_quick_benchmark(name, tmp_path, *, env=None, timeout=900, args=()):
    """``python benchmarks/NAME.py --quick --out tmp_path [args]`` in JAX's default configuration
    (the tests' simulated-device XLA_FLAGS removed); checks it exits 0 and wrote its plot,
    returns its JSON."""
    run_env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", f"{name}.py"), "--quick",
         "--out", str(tmp_path), *args],
        cwd=os.path.join(ROOT, "benchmarks"), env=run_env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    return json.loads((tmp_path / f"{name}.json").read_text())


def execute_notebook(name, *, cwd, timeout=300):
    """Run ``notebooks/NAME.ipynb`` top to bottom in folder ``cwd``; returns its outputs
    and their text."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    return outputs, text
