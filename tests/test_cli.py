"""The command line ``python -m seqrec_lib.train``: user errors are one line with exit status 2 and no
traceback, flags are parsed strictly, and SIGINT or SIGTERM stops a run that the same command continues."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from seqrec_lib.data import download
from seqrec_lib.train import PROG, _strict_bool, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "synthetic", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--dataset", "synthetic", "--batch-size", "-4"], "argument --batch-size: must be at least 1, got -4"),
    (["--dataset", "synthetic", "--progress", "nope"], "argument --progress: expected true or false, got 'nope'"),
    (["--dataset", "synthetic", "--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["--dataset", "synthetic", "--threads", "two"], "argument --threads: expected a whole number, got 'two'"),
    (["--dataset", "nope"], "unknown dataset 'nope'; known datasets: beauty"),
    (["--model", "nope", "--dataset", "synthetic"], "argument --model: invalid choice: 'nope'"),
    (["--dataset", "synthetic", "--n-heads", "3"], "d=64 must be divisible by n_heads=3"),
    (["--dataset", "synthetic", "--moddel", "fame"], "unrecognized arguments: --moddel fame"),
    ([], "the following arguments are required: --dataset"),
])
def test_user_errors_are_one_line_with_exit_status_2(args, message, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith(f"{PROG}: error: ") and message in captured.err
    assert captured.err.count("\n") == 1, captured.err


def test_missing_data_file_is_an_error_without_traceback(tmp_path, monkeypatch, capsys):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    assert main(["--dataset", "ml-100k", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{PROG}: error: Data file ml-100k/u.data not found at {tmp_path / 'data'}")
    assert "Traceback" not in err and not (tmp_path / "data").exists()


def test_usage_names_the_module_command(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: {PROG} ") and "--threads" in help_text and "train.py" not in help_text


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("yes", True), ("1", True),
                                         ("false", False), ("FALSE", False), ("no", False), ("0", False)])
def test_booleans_are_parsed_strictly(text, value):
    assert _strict_bool(text) is value


@pytest.mark.parametrize("text", ["nope", "", "2", "t", "off"])
def test_anything_else_is_not_a_boolean(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        _strict_bool(text)


# ------------------------------------------------------------------------------ signals, in a subprocess

def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "seqrec_lib.train", "--dataset", "synthetic", "--d", "16", "--n-blocks", "1",
            "--n-heads", "1", "--epochs", "3", "--patience", "3", "--threads", "1", "--progress", "false",
            "--out", str(run_dir)]


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, f"the run ended before writing {path.name}: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {path.name} after {seconds} s"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_and_the_same_command_continues_it(tmp_path, signum):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_command(run_dir), cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(run_dir / "last.pt", process)   # the first epoch has ended: the second one is running
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert f"training stopped by {signal.Signals(signum).name}; {run_dir / 'last.pt'} holds" in err
    assert "run the same command to continue" in err and not (run_dir / "result.json").exists()

    again = subprocess.run(_command(run_dir), cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"Resuming {run_dir / 'last.pt'}: " in again.stdout and "continuing with epoch" in again.stdout
    assert (run_dir / "result.json").exists()
