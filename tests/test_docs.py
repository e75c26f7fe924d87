"""The documentation: the getting-started page runs as written, and the site builds
with warnings as errors (every API page resolves, every docstring parses)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests._run import ROOT


def python_blocks(path):
    text = open(path).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_getting_started_runs_top_to_bottom(tmp_path):
    blocks = python_blocks(os.path.join(ROOT, "docs", "getting-started.md"))
    assert len(blocks) >= 4
    script = tmp_path / "getting_started.py"
    script.write_text("\n".join(blocks))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # a plain session
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout and "min-cut bound" in proc.stdout
    assert (tmp_path / "left_right_cut.png").stat().st_size > 0


def test_docs_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    proc = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "entanglement" / "index.html").is_file()
