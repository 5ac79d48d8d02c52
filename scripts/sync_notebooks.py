#!/usr/bin/env python
"""Keep the notebook pairs in ``notebooks/`` in line: ``NN_name.py`` (jupytext py:percent, the source you
read, diff and review) and ``NN_name.ipynb`` (the same cells as a notebook), paired by
``notebooks/jupytext.toml``.

    python scripts/sync_notebooks.py           # bring every pair that disagrees in line with its edited file
    python scripts/sync_notebooks.py --check   # only report: exit 1 if a pair disagrees or lacks a half

JupyterLab with jupytext (installed with ``pip install -e ".[notebooks]"``) saves both files of a pair, so
they only drift when one is edited alone: the ``.py`` in an editor, or the ``.ipynb`` in a Jupyter without
jupytext. The edited file is the one that differs both from the state in which the pair last agreed here
(a hash of both is kept in ``notebooks/.sync_state.json``, ignored by git) and from the last commit; without
either, the one saved last. Its cells are copied into the other file (``jupytext --sync``; the ``.ipynb``
keeps its cell ids). When both files were edited that way, nothing is overwritten: that is a conflict for you
to resolve.
``./run_all.sh`` runs this before it executes anything, so it always runs what was edited.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STATE = ".sync_state.json"


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_agrees(stem: Path) -> bool:
    """Do ``stem.ipynb`` and ``stem.py`` hold the same cells (types, sources, tags) and kernel?"""
    ipynb = nbformat.read(stem.with_suffix(".ipynb"), as_version=4)
    source = jupytext.read(stem.with_suffix(".py"), fmt="py:percent")
    return (_cells(ipynb) == _cells(source)
            and ipynb.metadata.get("kernelspec") == source.metadata.get("kernelspec"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_state(folder: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return {}


def _committed(path: Path) -> bytes | None:
    """``path`` as committed (git HEAD), or None outside a git checkout or when it is not committed."""
    try:
        result = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent, capture_output=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _edited(stem: Path, record: dict[str, str] | None) -> list[Path]:
    """The files of the pair that were edited: those that differ both from the state recorded when the pair
    last agreed here and from the last commit. Without either reference, the file saved last."""
    py, ipynb = stem.with_suffix(".py"), stem.with_suffix(".ipynb")
    edited, known = [], False
    for path in (py, ipynb):
        committed = _committed(path)
        recorded = (record or {}).get(path.suffix.lstrip("."))
        known = known or committed is not None or recorded is not None
        if _digest(path) != recorded and path.read_bytes() != committed:
            edited.append(path)
    if known and edited:
        return edited
    return [py if py.stat().st_mtime >= ipynb.stat().st_mtime else ipynb]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report pairs that disagree; write nothing")
    parser.add_argument("--dir", type=Path, default=NOTEBOOK_DIR, help="the paired notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    folder = args.dir
    state = _load_state(folder)
    stems = sorted({p.with_suffix("") for ext in ("*.py", "*.ipynb") for p in folder.glob(ext)})
    bad = []
    for stem in stems:
        py, ipynb = stem.with_suffix(".py"), stem.with_suffix(".ipynb")
        both = py.exists() and ipynb.exists()
        if both and pair_agrees(stem):
            state[stem.name] = {"py": _digest(py), "ipynb": _digest(ipynb)}
            continue
        if args.check:
            bad.append(f"{stem.name}: " + ("the .py and the .ipynb disagree" if both
                                           else f"no {ipynb.name if py.exists() else py.name}"))
            continue
        if both:
            edited = _edited(stem, state.get(stem.name))
            if len(edited) != 1:
                bad.append(f"{stem.name}: both {py.name} and {ipynb.name} changed since they last agreed; keep "
                           f"one (e.g. `git checkout {folder.name}/{ipynb.name}` keeps the .py), then rerun")
                continue
            source = edited[0]
            now = time.time()
            os.utime(source, (now, now))                 # jupytext --sync takes the file saved last
        else:
            source = py if py.exists() else ipynb
        result = subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0 or not pair_agrees(stem):
            bad.append(f"{stem.name}: jupytext --sync failed:\n{result.stdout}{result.stderr}")
            continue
        state[stem.name] = {"py": _digest(py), "ipynb": _digest(ipynb)}
        other = ipynb if source == py else py
        print(f"notebooks: {other.name} updated from {source.name}")
    if not args.check:
        (folder / STATE).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
