"""Which MKL code path this process's fp32 matmuls take, and a shim that gives non-Intel x86 CPUs MKL's own kernels.

PyTorch's CPU wheels do fp32 matmuls in MKL, and MKL picks its kernels by CPU *vendor*: on an AMD CPU it runs a
generic path whatever the CPU supports. On an AMD EPYC (Zen 5, AVX-512, 1 thread, quiet) the products of the
catalogue cross-entropy ([128, 64] x [64, 12101] and its two gradients, as ``benchmarks/ce_products.py`` times them)
ran at 85-90 GFLOP/s, and at 195-225 GFLOP/s with MKL's Intel path; a SASRec-CE epoch on Beauty (2 threads) went from
9.5 s to 5.6 s (``benchmarks/results/speed_cpu_2threads_avx512_mklshim.json``). The shim is a one-line library that
answers MKL's vendor check (``mkl_serv_intel_cpu_true``) with 1, so MKL chooses by the CPU's
features (AVX-512 or AVX2) instead. Loaded with ``LD_PRELOAD`` before Python starts, it changes which kernels
run, not what they compute: fp32 products, equal to the default path's up to rounding (``tests/test_blas.py``).

    LD_PRELOAD=$(python -m seqrec_lib.blas) python scripts/paper_runs.py --plan beauty-fig5 --workers 2

``python -m seqrec_lib.blas`` compiles the shim once (a C compiler, ``cc``, is needed) into the cache folder
(``SEQREC_CACHE_DIR``, else ``~/.cache/seqrec``) and prints its path. Records and benchmarks name the path taken
(``mkl_path``). On Intel CPUs, or without MKL, the shim changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

SHIM_NAME = "libseqrec_mkl_intel_cpu.so"
SHIM_SOURCE = "/* seqrec_lib.blas: MKL's vendor check, answered 'Intel' */\nint mkl_serv_intel_cpu_true(void) { return 1; }\n"


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ('vendor_id', 'model name', 'flags', ...); {} where there is
    none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break                                        # the end of the first processor's block
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_vendor() -> str:
    """The CPU vendor string of /proc/cpuinfo ('GenuineIntel', 'AuthenticAMD', ...); '' where unknown."""
    return cpuinfo().get("vendor_id", "")


def shim_loaded() -> bool:
    """True when this process has the shim mapped (it was in ``LD_PRELOAD`` when the process started)."""
    try:
        return SHIM_NAME in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def mkl_path() -> str:
    """The kernels fp32 CPU matmuls take here: 'MKL, Intel path (vendor shim)', 'MKL, Intel path', 'MKL, generic path
    (AuthenticAMD)', or 'no MKL'."""
    if not torch.backends.mkl.is_available():
        return "no MKL"
    if shim_loaded():
        return "MKL, Intel path (vendor shim)"
    vendor = cpu_vendor()
    return "MKL, Intel path" if vendor in ("GenuineIntel", "") else f"MKL, generic path ({vendor})"


def build_shim(directory: str | Path | None = None) -> Path:
    """The shim library, compiled with ``cc`` into ``directory`` (default: the cache folder) unless already there."""
    from .data.loading import resolve_cache_dir

    folder = Path(directory) if directory is not None else resolve_cache_dir() / "blas"
    target = folder / SHIM_NAME
    if target.exists():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("building the MKL vendor shim needs a C compiler: none found as $CC, cc or gcc")
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "mkl_intel_cpu.c"
    source.write_text(SHIM_SOURCE)
    partial = folder / f"{SHIM_NAME}.{os.getpid()}"
    done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{compiler} could not build {target}: {done.stderr.strip()}")
    partial.replace(target)                                  # atomic: a concurrent build never sees half a file
    return target


if __name__ == "__main__":
    try:
        print(build_shim())
    except RuntimeError as err:
        print(f"seqrec_lib.blas: {err}", file=sys.stderr)
        sys.exit(1)
