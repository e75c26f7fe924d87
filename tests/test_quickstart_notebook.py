"""notebooks/01_quickstart.ipynb executes top to bottom (only imports the package)."""

import pytest

from tests._run import execute_notebook


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    outputs, text = execute_notebook("01_quickstart", cwd=tmp_path)  # a failing cell raises
    acc = float(text.split("test accuracy ", 1)[1].split(",")[0])
    assert acc > 0.8, text  # it trained
    assert "min-cut bound" in text  # the report's table
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2  # the learning curve and the cut drawn on the tree
