#!/usr/bin/env python
"""Keep the notebook pairs in ``notebooks/`` in line: ``NN_name.py`` (jupytext py:percent, the source you
read, diff and review) and ``NN_name.ipynb`` (the same cells as a notebook), paired by
``notebooks/jupytext.toml``.

    python scripts/sync_notebooks.py           # sync every pair that disagrees, from the file saved last
    python scripts/sync_notebooks.py --check   # only report: exit 1 if a pair disagrees or lacks a half

JupyterLab with jupytext (installed with ``pip install -e ".[notebooks]"``) saves both files of a pair, so
they only drift when one is edited alone: the ``.py`` in an editor, or the ``.ipynb`` in a Jupyter without
jupytext. Syncing takes the file saved last (``jupytext --sync``). When both files of a disagreeing pair
have uncommitted changes (git), nothing is overwritten: that is a conflict for you to resolve.
``./run_all.sh`` runs this before it executes anything, so it always runs what was edited.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_agrees(stem: Path) -> bool:
    """Do ``stem.ipynb`` and ``stem.py`` hold the same cells (types, sources, tags) and kernel?"""
    ipynb = nbformat.read(stem.with_suffix(".ipynb"), as_version=4)
    source = jupytext.read(stem.with_suffix(".py"), fmt="py:percent")
    return (_cells(ipynb) == _cells(source)
            and ipynb.metadata.get("kernelspec") == source.metadata.get("kernelspec"))


def _uncommitted(path: Path) -> bool | None:
    """Whether git sees changes to ``path`` (None when git or a repository is not available)."""
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(result.stdout.strip()) if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report pairs that disagree; write nothing")
    parser.add_argument("--dir", type=Path, default=NOTEBOOK_DIR, help="the paired notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    stems = sorted({p.with_suffix("") for ext in ("*.py", "*.ipynb") for p in args.dir.glob(ext)})
    bad = []
    for stem in stems:
        py, ipynb = stem.with_suffix(".py"), stem.with_suffix(".ipynb")
        if py.exists() and ipynb.exists() and pair_agrees(stem):
            continue
        if args.check:
            bad.append(f"{stem.name}: " + ("the .py and the .ipynb disagree" if py.exists() and ipynb.exists()
                                           else f"no {ipynb.name if py.exists() else py.name}"))
            continue
        if py.exists() and ipynb.exists() and _uncommitted(py) and _uncommitted(ipynb):
            bad.append(f"{stem.name}: both {py.name} and {ipynb.name} were edited and they disagree; keep one "
                       f"(e.g. `git checkout {ipynb.relative_to(args.dir.parent)}` to keep the .py), then rerun")
            continue
        newer = py if not ipynb.exists() or (py.exists() and py.stat().st_mtime >= ipynb.stat().st_mtime) else ipynb
        other = ipynb if newer is py else py
        result = subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(newer)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            bad.append(f"{stem.name}: jupytext --sync failed:\n{result.stdout}{result.stderr}")
            continue
        print(f"notebooks: {other.name} updated from {newer.name} (saved last)")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
