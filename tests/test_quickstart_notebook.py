"""notebooks/quickstart.ipynb executes top to bottom (only imports the package)."""

import pytest

from tests._run import execute_notebook


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    _, outputs = execute_notebook("quickstart", cwd=tmp_path)
    assert "test accuracy" in outputs and "min-cut bound" in outputs
    assert "Error" not in outputs
