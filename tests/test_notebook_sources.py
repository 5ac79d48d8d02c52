"""Editing a notebook survives and is what runs: a save in JupyterLab (jupytext's contents manager) writes
both files of the pair; an edit of either file alone is carried to the other by scripts/sync_notebooks.py
(a two-sided edit stops it, overwriting nothing); and ``./run_all.sh`` executes the edited cell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
SYNC = ROOT / "scripts" / "sync_notebooks.py"
NAME = "00_data"


def _copy_notebooks(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "notebooks").iterdir():
        if path.suffix in (".py", ".ipynb", ".toml"):
            shutil.copy2(path, dest / path.name)
    return dest


def _sync(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SYNC), "--dir", str(folder), *args], capture_output=True, text=True)


def _jupyterlab_save(folder: Path, name: str, marker: str) -> None:
    """Open ``name.ipynb`` and save it with one more line in its last code cell, as JupyterLab does with
    jupytext installed (its contents manager, configured by the folder's jupytext.toml)."""
    contents = pytest.importorskip("jupyter_server.services.contents.largefilemanager")
    try:                                                   # jupytext >= 1.17
        from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class as build
    except ImportError:
        from jupytext.contentsmanager import build_jupytext_contents_manager_class as build

    manager = build(contents.LargeFileManager)(root_dir=str(folder))
    model = manager.get(f"{name}.ipynb")
    nb = model["content"]
    cell = [c for c in nb.cells if c.cell_type == "code"][-1]
    cell.source += f"\nprint({marker!r})"
    manager.save({"type": "notebook", "content": nb}, f"{name}.ipynb")


def _last_code(nb: nbformat.NotebookNode) -> str:
    return [c for c in nb.cells if c.cell_type == "code"][-1].source


def test_jupyterlab_save_writes_both_files(tmp_path: Path) -> None:
    folder = _copy_notebooks(tmp_path / "notebooks")
    _jupyterlab_save(folder, NAME, "saved in JupyterLab")
    assert "saved in JupyterLab" in (folder / f"{NAME}.py").read_text()
    assert "saved in JupyterLab" in _last_code(nbformat.read(folder / f"{NAME}.ipynb", as_version=4))
    assert _sync(folder, "--check").returncode == 0


def test_an_edit_of_either_file_reaches_the_other(tmp_path: Path) -> None:
    folder = _copy_notebooks(tmp_path / "notebooks")
    assert _sync(folder).returncode == 0                                      # records the agreed state
    py, ipynb = folder / f"{NAME}.py", folder / f"{NAME}.ipynb"
    ids = [c.id for c in nbformat.read(ipynb, as_version=4).cells]
    py.write_text(py.read_text() + "\n# %%\nprint('edited in an editor')\n")
    assert _sync(folder, "--check").returncode == 1
    result = _sync(folder)
    assert result.returncode == 0 and f"{NAME}.ipynb updated from {NAME}.py" in result.stdout
    nb = nbformat.read(ipynb, as_version=4)
    assert _last_code(nb) == "print('edited in an editor')"
    assert [c.id for c in nb.cells][:len(ids)] == ids                         # the cells keep their ids

    nb.cells[0].source += "\n\nEdited in a Jupyter without jupytext."         # the .ipynb alone, older mtime
    nbformat.write(nb, ipynb)
    os.utime(ipynb, (py.stat().st_mtime - 60, py.stat().st_mtime - 60))
    result = _sync(folder)
    assert result.returncode == 0 and f"{NAME}.py updated from {NAME}.ipynb" in result.stdout
    assert "# Edited in a Jupyter without jupytext." in py.read_text()
    assert _sync(folder, "--check").returncode == 0


def test_a_two_sided_edit_overwrites_nothing(tmp_path: Path) -> None:
    folder = _copy_notebooks(tmp_path / "notebooks")
    assert _sync(folder).returncode == 0
    py, ipynb = folder / f"{NAME}.py", folder / f"{NAME}.ipynb"
    py.write_text(py.read_text() + "\n# %%\nprint('one edit')\n")
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('another edit')"))
    nbformat.write(nb, ipynb)
    before = py.read_text(), ipynb.read_text()
    result = _sync(folder)
    assert result.returncode == 1 and "both" in result.stderr and NAME in result.stderr
    assert (py.read_text(), ipynb.read_text()) == before


@pytest.mark.notebooks
def test_run_all_executes_what_was_edited(tmp_path: Path) -> None:
    """A copy of the repository's runner and notebooks: edit a source cell in JupyterLab, then another in
    the .py alone (an editor), run the smoke profile of that notebook with ./run_all.sh, and find both
    edits in what it printed."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "run_all.sh", repo / "run_all.sh")
    shutil.copy2(SYNC, repo / "scripts" / SYNC.name)
    folder = _copy_notebooks(repo / "notebooks")
    _jupyterlab_save(folder, NAME, "MARKER saved in JupyterLab")
    py = folder / f"{NAME}.py"
    text = py.read_text()
    setup = "print(f\"profile {P.name!r}: {P.description}\")"
    assert text.count(setup) == 1
    py.write_text(text.replace(setup, setup + "\nprint('MARKER edited in the .py')"))

    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    result = subprocess.run([str(repo / "run_all.sh"), "--profile", "smoke", "--only", NAME, "--outputs", str(out)],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    executed = nbformat.read(out / "smoke" / "notebooks" / f"{NAME}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "MARKER saved in JupyterLab" in printed and "MARKER edited in the .py" in printed
    synced = nbformat.read(folder / f"{NAME}.ipynb", as_version=4)               # the pair was synced first
    assert any("MARKER edited in the .py" in c.source for c in synced.cells)
