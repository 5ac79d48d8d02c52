"""Committed notebooks are clean: no outputs, no execution counts, no papermill metadata, exactly one cell
tagged ``parameters``, and they are what ``scripts/make_notebooks.py`` generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = ["00_data", "01_train", "02_head_sweep", "03_expert_sweep", "04_head_diversity", "05_case_study",
            "06_results"]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_every_notebook_is_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata, f"{path.name}: papermill metadata in the notebook"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the notebook"
    parameters = []
    for i, cell in enumerate(nb.cells):
        assert "papermill" not in cell.metadata, f"{path.name} cell {i}: papermill metadata"
        assert "execution" not in cell.metadata, f"{path.name} cell {i}: execution timings"
        if "parameters" in cell.metadata.get("tags", []):
            parameters.append(i)
        if "injected-parameters" in cell.metadata.get("tags", []):
            pytest.fail(f"{path.name} cell {i}: a papermill injected-parameters cell was committed")
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i}: has an execution count"
    assert len(parameters) == 1, f"{path.name}: {len(parameters)} cells tagged 'parameters', expected exactly one"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert parameters[0] == first_code, f"{path.name}: the parameters cell must be the first code cell"
    source = nb.cells[first_code].source
    assert "profile" in source and "outputs" in source, f"{path.name}: parameters lack profile/outputs"


def test_notebooks_match_their_generator() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_notebooks.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
