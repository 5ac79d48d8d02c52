"""``run_all.sh``: where it writes (``--outputs DIR``, never the committed ``outputs/`` unless ``--publish``),
which kernel it uses (this Python's, without touching user-level kernels) and how it rejects bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_all.sh"


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


def run_all(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--publish", "--outputs", "x"], "cannot be combined with --outputs"),
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--bogus"], "unknown argument '--bogus'"),
])
def test_bad_options_exit_2_before_running_anything(tmp_path, args, message):
    result = run_all(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.notebooks
def test_outputs_go_where_asked_the_showcase_and_user_kernels_stay_untouched(tmp_path):
    user = tmp_path / "jupyter-user"   # a user-level kernel of another environment, named like ours
    (user / "kernels" / "python3").mkdir(parents=True)
    foreign = json.dumps({"argv": ["/other/env/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          "display_name": "another environment", "language": "python"})
    (user / "kernels" / "python3" / "kernel.json").write_text(foreign)
    showcase, default_out = _tree(ROOT / "outputs" / "smoke"), _tree(ROOT / "out" / "smoke")

    result = run_all("--profile", "smoke", "--outputs", "mine", "--only", "00_data", cwd=tmp_path,
                     env={"JUPYTER_DATA_DIR": str(user), "JUPYTER_PREFER_ENV_PATH": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "mine" / "smoke"                       # --outputs is relative to where it was started
    assert (out / "notebooks" / "00_data.ipynb").exists() and (out / "logs" / "00_data.log").exists()
    assert (out / "figures" / "00_sequence_lengths.png").exists()
    assert "00_data" in result.stdout and "ok" in result.stdout
    assert _tree(ROOT / "outputs" / "smoke") == showcase and _tree(ROOT / "out" / "smoke") == default_out
    assert (user / "kernels" / "python3" / "kernel.json").read_text() == foreign
    assert sorted(p.name for p in (user / "kernels").iterdir()) == ["python3"]


@pytest.mark.notebooks
def test_an_unknown_notebook_name_is_an_error(tmp_path):
    result = run_all("--profile", "smoke", "--outputs", str(tmp_path / "o"), "--only", "07_nothing", cwd=tmp_path)
    assert result.returncode == 2 and "no notebook run named '07_nothing'" in result.stderr


@pytest.mark.notebooks
def test_the_notebooks_kernels_get_mkls_fast_path_where_it_applies(tmp_path):
    """run_all.sh exports LD_PRELOAD with the MKL vendor shim (seqrec_lib.blas) where it applies, so every process it
    starts (the notebook runner, its kernels) inherits it; its first line says so. SEQREC_FAST_BLAS=0: not."""
    from seqrec_lib import blas

    why_not = blas.fast_path_applies()
    if why_not is not None:
        pytest.skip(f"the shim does not apply on this machine: {why_not}")
    base = {"LD_PRELOAD": "", "SEQREC_CACHE_DIR": str(tmp_path / "cache")}
    on = run_all("--profile", "smoke", "--outputs", str(tmp_path / "o"), "--only", "07_nothing", cwd=tmp_path, env=base)
    off = run_all("--profile", "smoke", "--outputs", str(tmp_path / "o"), "--only", "07_nothing", cwd=tmp_path,
                  env={**base, "SEQREC_FAST_BLAS": "0"})
    assert on.returncode == off.returncode == 2, on.stderr + off.stderr
    assert "MKL's Intel kernels (vendor shim" in on.stdout.splitlines()[0]
    assert "vendor shim" not in off.stdout and "seqrec_lib.blas" not in on.stderr + off.stderr


@pytest.mark.notebooks
def test_the_summary_counts_the_runs_trained_and_read_back(tmp_path):
    """Started again, run_all.sh reads its finished run back and says it trained nothing."""
    args = ("--profile", "smoke", "--outputs", str(tmp_path / "o"), "--only", "01_train_sasrec")
    first = run_all(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Runs: 1 trained, 0 read back" in first.stdout
    again = run_all(*args, cwd=tmp_path)
    assert "Runs: 0 trained, 1 read back" in again.stdout, again.stdout + again.stderr
