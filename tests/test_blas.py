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
