"""Running the project's scripts and notebooks from tests: benchmarks in ``--quick``
mode in a subprocess, notebooks top to bottom with nbclient."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_quick_benchmark(name, tmp_path, *, env=None, timeout=900, args=()):
    """``python -m benchmarks.NAME --quick --out tmp_path [args]`` in JAX's default configuration
    (the tests' simulated-device XLA_FLAGS removed); checks it exits 0 and wrote its plot,
    returns its JSON."""
    run_env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(tmp_path), *args],
        cwd=ROOT, env=run_env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    return json.loads((tmp_path / f"{name}.json").read_text())


NOTEBOOKS = ("01_quickstart", "02_entanglement", "03_experiments")


def execute_notebook(name, *, cwd=None, timeout=300, save=False):
    """Run ``notebooks/NAME.ipynb`` top to bottom (in ``notebooks/`` unless ``cwd``; a
    failing cell raises); returns its outputs and their text. ``save`` writes the
    outputs back into the notebook (they are committed with it)."""
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(ROOT, "notebooks", f"{name}.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(cwd or os.path.dirname(path))}},
    ).execute()  # fmt: skip
    if save:
        nbformat.write(nb, path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    return outputs, text


if __name__ == "__main__":  # python -m tests._run: refresh the notebooks' stored outputs
    for nb_name in NOTEBOOKS:
        print(nb_name, flush=True)
        execute_notebook(nb_name, timeout=900, save=True)
