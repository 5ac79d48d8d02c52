"""The notebooks are jupytext pairs (``notebooks/jupytext.toml``): ``NN_name.py`` (py:percent, the source)
and ``NN_name.ipynb``. Both are committed clean: no outputs, no execution counts, no papermill or widget
metadata, exactly one cell tagged ``parameters`` (the first code cell, with ``profile`` and ``outputs``), the
kernel named explicitly; each pair holds the same cells, and the ``.py`` is exactly what jupytext writes for
its ``.ipynb``. No notebook generator remains."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = ["00_data", "01_train", "02_head_sweep", "03_expert_sweep", "04_head_diversity", "05_case_study",
            "06_results"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
MAX_CODE_CELLS = 15


def _read_pair(name: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(the .ipynb as saved, the .py read by jupytext as a notebook)."""
    return (nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4),
            jupytext.read(NOTEBOOK_DIR / f"{name}.py", fmt="py:percent"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_differences(ipynb: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """What differs between a notebook and its paired source: cell types, sources, tags, kernel."""
    problems = []
    a, b = _cells(ipynb), _cells(source)
    if len(a) != len(b):
        problems.append(f"{len(a)} cells in the .ipynb, {len(b)} in the .py")
    for i, (x, y) in enumerate(zip(a, b)):
        for what, u, v in zip(("type", "source", "tags"), x, y):
            if u != v:
                problems.append(f"cell {i}: {what} differs:\n  .ipynb: {u!r}\n  .py:    {v!r}")
    if ipynb.metadata.get("kernelspec") != source.metadata.get("kernelspec"):
        problems.append(f"kernelspec differs: {ipynb.metadata.get('kernelspec')} vs {source.metadata.get('kernelspec')}")
    return problems


def test_every_notebook_is_a_pair_and_no_generator_remains() -> None:
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == EXPECTED
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.py")) == EXPECTED
    config = (NOTEBOOK_DIR / "jupytext.toml").read_text()
    assert re.search(r'^formats\s*=\s*"ipynb,py:percent"', config, re.M), "notebooks/jupytext.toml must pair them"
    assert not (ROOT / "scripts" / "make_notebooks.py").exists()


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_clean(name: str) -> None:
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata, f"{path.name}: papermill metadata in the notebook"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the notebook"
    for i, cell in enumerate(nb.cells):
        assert "papermill" not in cell.metadata, f"{path.name} cell {i}: papermill metadata"
        assert "execution" not in cell.metadata, f"{path.name} cell {i}: execution timings"
        assert "injected-parameters" not in cell.metadata.get("tags", []), \
            f"{path.name} cell {i}: a papermill injected-parameters cell was committed"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i}: has an execution count"


@pytest.mark.parametrize("name", EXPECTED)
def test_parameters_cell_kernel_and_size(name: str) -> None:
    for nb, kind in zip(_read_pair(name), (".ipynb", ".py")):
        where = f"{name}{kind}"
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{where}: {len(tagged)} cells tagged 'parameters', expected exactly one"
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        assert tagged[0] == code[0], f"{where}: the parameters cell must be the first code cell"
        source = nb.cells[code[0]].source
        assert re.search(r"^profile = ", source, re.M) and re.search(r"^outputs = ", source, re.M), \
            f"{where}: the parameters cell lacks profile/outputs"
        # papermill runs the kernel named here unless told otherwise (run_all.sh and the tests pass -k)
        assert dict(nb.metadata.get("kernelspec", {})) == KERNELSPEC, f"{where}: kernelspec {nb.metadata.get('kernelspec')}"
        assert len(code) <= MAX_CODE_CELLS, f"{where}: {len(code)} code cells; keep notebooks thin"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_and_its_source_agree(name: str) -> None:
    ipynb, source = _read_pair(name)
    problems = pair_differences(ipynb, source)
    assert not problems, (f"notebooks/{name}.ipynb and notebooks/{name}.py disagree; run "
                          f"`jupytext --sync notebooks/{name}.py` (the file saved last wins):\n" + "\n".join(problems))
    # the text source is exactly what jupytext writes for the notebook (so a JupyterLab save changes nothing)
    assert jupytext.writes(ipynb, fmt="py:percent") == (NOTEBOOK_DIR / f"{name}.py").read_text(), \
        f"notebooks/{name}.py is not in jupytext's canonical form; run `jupytext --sync notebooks/{name}.py`"


def test_pair_check_catches_a_disagreement() -> None:
    ipynb, source = _read_pair("02_head_sweep")
    assert pair_differences(ipynb, source) == []
    edited = nbformat.from_dict(ipynb)
    edited.cells[-1].source += "\nprint('edited in JupyterLab')"
    assert any("source differs" in p for p in pair_differences(edited, source))
    untagged = nbformat.from_dict(ipynb)
    next(c for c in untagged.cells if c.cell_type == "code").metadata["tags"] = []
    assert any("tags differs" in p for p in pair_differences(untagged, source))


def test_run_all_executes_synced_notebooks_with_an_explicit_kernel() -> None:
    script = (ROOT / "run_all.sh").read_text()
    assert "scripts/sync_notebooks.py" in script, "run_all.sh must sync each .ipynb with its .py first"
    assert re.search(r"(papermill|notebook_runner)\b.*\s-k\s", script), \
        "run_all.sh must name the kernel for papermill (-k)"
