"""scripts/paper_runs.py: several processes share a plan by claiming units; a dead process's claim is taken over."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _paper_runs():
    spec = importlib.util.spec_from_file_location("paper_runs", ROOT / "scripts" / "paper_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_unit_is_claimed_once_and_a_dead_claim_is_taken_over(tmp_path):
    pr = _paper_runs()
    folder = tmp_path / "sasrec-abc"
    assert pr.claim(folder) and (folder / "claimed.pid").read_text() == str(os.getpid())
    assert pr.claim(folder)                                   # this process holds it already
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / "claimed.pid").write_text(str(other.pid))   # a live other process holds it
        assert not pr.claim(folder)
    finally:
        other.kill()
        other.wait()
    assert pr.claim(folder)                                   # its process is gone: taken over
    assert (folder / "claimed.pid").read_text() == str(os.getpid())
    pr.release([folder])
    assert not (folder / "claimed.pid").exists()
