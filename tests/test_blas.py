"""The MKL vendor shim: it builds, a process started with it reports it, and its matmuls equal the default ones."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqrec_lib import blas

ROOT = Path(__file__).resolve().parents[1]

PRODUCTS = """
import json, sys, torch
from seqrec_lib import blas
torch.manual_seed(0)
h, table = torch.randn(300, 64), torch.randn(12101, 64)
logits = h @ table.T                                   # the catalogue CE's three products, as losses.py forms them
grad = torch.softmax(logits, 1)
out = {"path": blas.mkl_path(), "logits": logits[:3, :5].tolist(), "grad_h": (grad @ table)[:3].tolist(),
       "grad_w": (grad.T @ h)[:5].tolist()}
json.dump(out, sys.stdout)
"""


def _products(preload: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LD_PRELOAD", None)
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    done = subprocess.run([sys.executable, "-c", PRODUCTS], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_mkl_path_names_the_vendor_path_without_the_shim(monkeypatch):
    if not torch.backends.mkl.is_available():
        assert blas.mkl_path() == "no MKL"
        return
    monkeypatch.setattr(blas, "shim_loaded", lambda: False)
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "AuthenticAMD")
    assert blas.mkl_path() == "MKL, generic path (AuthenticAMD)"
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "GenuineIntel")
    assert blas.mkl_path() == "MKL, Intel path"
    monkeypatch.setattr(blas, "shim_loaded", lambda: True)
    assert blas.mkl_path() == "MKL, Intel path (vendor shim)"


@pytest.mark.skipif(not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")),
                    reason="no C compiler to build the shim")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD and /proc/self/maps are Linux's")
def test_shim_builds_is_reported_and_leaves_the_products_unchanged(tmp_path):
    shim = blas.build_shim(tmp_path)
    assert shim.name == blas.SHIM_NAME and blas.build_shim(tmp_path) == shim          # built once
    default, shimmed = _products(None), _products(shim)
    assert "vendor shim" not in default["path"]
    if torch.backends.mkl.is_available():
        assert shimmed["path"] == "MKL, Intel path (vendor shim)"
    for key in ("logits", "grad_h", "grad_w"):
        a, b = torch.tensor(default[key]), torch.tensor(shimmed[key])
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-4)                        # other kernels, same fp32 maths


def test_build_shim_without_a_compiler_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs a C compiler"):
        blas.build_shim(tmp_path)


# ------------------------------------------------------------------------------ the shim by default


def _cli_record(tmp_path: Path, name: str, **env_vars: str) -> dict:
    """A 1-epoch default CLI training on the synthetic data, started without the shim in LD_PRELOAD: its record."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", blas.FAST_BLAS_ENV, blas.REEXEC_ENV)}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "SEQREC_CACHE_DIR": str(tmp_path / "cache"),
                **env_vars})
    out = tmp_path / name
    done = subprocess.run([sys.executable, "-m", "seqrec_lib.train", "--dataset", "synthetic", "--d", "16",
                           "--n-blocks", "1", "--n-heads", "1", "--epochs", "1", "--threads", "1", "--progress",
                           "false", "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "seqrec_lib.blas" not in done.stderr                  # no warning where the shim builds
    return json.loads((out / "result.json").read_text())


def test_a_default_cli_training_takes_mkls_intel_path_where_the_shim_applies(tmp_path):
    why_not = blas.fast_path_applies()
    if why_not is not None:
        pytest.skip(f"the shim does not apply on this machine: {why_not}")
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler to build the shim")
    record = _cli_record(tmp_path, "default")
    assert record["provenance"]["device_name"].endswith("MKL, Intel path (vendor shim))")
    assert (tmp_path / "cache" / "blas" / blas.SHIM_NAME).exists()          # built where SEQREC_CACHE_DIR says


def test_seqrec_fast_blas_0_keeps_mkls_default_path(tmp_path):
    record = _cli_record(tmp_path, "off", SEQREC_FAST_BLAS="0")
    assert "vendor shim" not in record["provenance"]["device_name"]
    assert not (tmp_path / "cache" / "blas").exists()                      # nothing built either


@pytest.fixture
def execve(monkeypatch):
    """fast_path_or_reexec where the shim applies and is not loaded, with os.execve recorded instead of run."""
    calls = []
    monkeypatch.setattr(blas, "fast_path_applies", lambda: None)
    monkeypatch.setattr(blas, "shim_loaded", lambda: False)
    monkeypatch.setattr(blas, "build_shim", lambda: Path("/cache/blas") / blas.SHIM_NAME)
    monkeypatch.setattr(blas.os, "execve", lambda path, args, env: calls.append((path, args, env)))
    monkeypatch.setattr(blas.sys, "orig_argv", ["python", "-X", "utf8", "-m", "seqrec_lib.train", "--epochs", "1"])
    monkeypatch.setattr(blas.sys, "argv", ["/repo/seqrec_lib/train.py", "--epochs", "1"])
    for name in (blas.FAST_BLAS_ENV, blas.REEXEC_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LD_PRELOAD", "/other/libx.so")
    return calls


def test_the_command_starts_again_with_the_shim_first_in_ld_preload(execve):
    blas.fast_path_or_reexec()
    ((path, args, env),) = execve
    assert path == sys.executable and args == [sys.executable, "-X", "utf8", "-m", "seqrec_lib.train", "--epochs", "1"]
    assert env["LD_PRELOAD"] == f"/cache/blas/{blas.SHIM_NAME}:/other/libx.so"
    assert env[blas.REEXEC_ENV] == str(os.getpid())


def test_nothing_starts_again_when_called_with_arguments_off_or_started_again_already(execve, monkeypatch, capsys):
    blas.fast_path_or_reexec(["--epochs", "1"])          # main(argv) called from Python: not this process's command
    monkeypatch.setenv(blas.FAST_BLAS_ENV, "0")
    blas.fast_path_or_reexec()
    assert execve == [] and capsys.readouterr().err == ""
    monkeypatch.delenv(blas.FAST_BLAS_ENV)
    monkeypatch.setenv(blas.REEXEC_ENV, str(os.getpid()))  # this very process started again: never a second time
    blas.fast_path_or_reexec()
    assert execve == [] and "the shim is not loaded" in capsys.readouterr().err


def test_a_shim_that_cannot_be_built_is_one_line_and_the_default_path(execve, monkeypatch, capsys):
    def no_compiler():
        raise RuntimeError("building the MKL vendor shim needs a C compiler: none found as $CC, cc or gcc")

    monkeypatch.setattr(blas, "build_shim", no_compiler)
    blas.fast_path_or_reexec()
    err = capsys.readouterr().err
    assert execve == [] and err.count("\n") == 1 and "needs a C compiler" in err and "SEQREC_FAST_BLAS=0" in err


def test_preload_prints_the_ld_preload_to_use(execve, monkeypatch, capsys):
    assert blas._main(["--preload"]) == 0
    assert capsys.readouterr().out.strip() == f"/cache/blas/{blas.SHIM_NAME}:/other/libx.so"
    monkeypatch.setattr(blas, "fast_path_applies", lambda: "an Intel CPU: MKL takes its fast path already")
    assert blas._main(["--preload"]) == 0
    assert capsys.readouterr().out.strip() == "/other/libx.so"                 # unchanged where it does not apply
