"""Which MKL code path this process's fp32 matmuls take, and a shim that gives non-Intel x86 CPUs MKL's own kernels.

PyTorch's CPU wheels do fp32 matmuls in MKL, and MKL picks its kernels by CPU *vendor*: on an AMD CPU it runs a
generic path whatever the CPU supports. On an AMD EPYC (Zen 5, AVX-512, 1 thread, quiet) the products of the
catalogue cross-entropy ([128, 64] x [64, 12101] and its two gradients, as ``benchmarks/ce_products.py`` times them)
ran at 85-90 GFLOP/s, and at 195-225 GFLOP/s with MKL's Intel path; a SASRec-CE epoch on Beauty (2 threads) went from
9.5 s to 5.6 s (``benchmarks/results/speed_cpu_2threads_avx512_mklshim.json``). The shim is a one-line library that
answers MKL's vendor check (``mkl_serv_intel_cpu_true``) with 1, so MKL chooses by the CPU's
features (AVX-512 or AVX2) instead. Loaded with ``LD_PRELOAD`` before Python starts, it changes which kernels
run, not what they compute: fp32 products, equal to the default path's up to rounding (``tests/test_blas.py``).

**It is the default** where it is measured to help (``fast_path_applies``: Linux, an x86 CPU whose vendor is not
Intel, torch's BLAS MKL) and the shim exists or a C compiler can build it: the entry points that train or rank
(``python -m seqrec_lib.train``/``seqrec-train``, ``scripts/paper_runs.py`` and its workers, ``rerun_records.py``,
``fame_start.py``, ``per_user_test.py``) call ``fast_path_or_reexec()`` first, which starts the same command again
(``os.execve``, same pid) with the shim in ``LD_PRELOAD``; ``run_all.sh`` exports
``LD_PRELOAD=$(python -m seqrec_lib.blas --preload)``, so the notebooks' kernels inherit it. ``SEQREC_FAST_BLAS=0``
turns it off (MKL's default path, as before); a shim that cannot be built is one line on stderr, and the run goes
on on the default path (docs/protocol.md §8). By hand, for any other command:

    LD_PRELOAD=$(python -m seqrec_lib.blas) python benchmarks/speed.py ...

``python -m seqrec_lib.blas`` compiles the shim once (a C compiler, ``cc``, is needed) into the cache folder
(``SEQREC_CACHE_DIR``, else ``~/.cache/seqrec``) and prints its path; ``--preload`` prints the ``LD_PRELOAD`` value
to start a process with (the shim first where it applies, else ``LD_PRELOAD`` unchanged). Records and benchmarks
name the path taken (``mkl_path``, in ``provenance.device_name``). On Intel CPUs, or without MKL, the shim changes
nothing.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

SHIM_NAME = "libseqrec_mkl_intel_cpu.so"
FAST_BLAS_ENV = "SEQREC_FAST_BLAS"
"""'0' (or 'false', 'no', 'off') turns the default shim off: MKL's default path, as without this module."""
REEXEC_ENV = "SEQREC_FAST_BLAS_REEXEC"
"""Set, to its pid, by a process that starts itself again with the shim: that process (same pid) never does twice."""
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
        why = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise RuntimeError(f"{compiler} could not build {target}: {why}")
    partial.replace(target)                                  # atomic: a concurrent build never sees half a file
    return target


def fast_path_off() -> bool:
    """True when ``SEQREC_FAST_BLAS`` turns the default shim off ('0', 'false', 'no', 'off')."""
    return os.environ.get(FAST_BLAS_ENV, "").strip().lower() in ("0", "false", "no", "off")


def fast_path_applies() -> str | None:
    """None where the shim is measured to help: Linux (``LD_PRELOAD``), an x86 CPU whose vendor is known and not Intel,
    torch's BLAS MKL. Else why not, in words."""
    if not sys.platform.startswith("linux"):
        return f"LD_PRELOAD is Linux's ({sys.platform})"
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return f"not an x86 CPU ({machine})"
    vendor = cpu_vendor()
    if vendor in ("GenuineIntel", ""):
        return "an Intel CPU: MKL takes its fast path already" if vendor else "unknown CPU vendor"
    if not torch.backends.mkl.is_available():
        return "torch's BLAS is not MKL"
    return None


def _warn(message: str) -> None:
    print(f"seqrec_lib.blas: {message}; MKL's default path (SEQREC_FAST_BLAS=0 silences this)", file=sys.stderr,
          flush=True)


def fast_path_preload(environ: dict[str, str] | None = None) -> str | None:
    """The ``LD_PRELOAD`` value to start a process with so that MKL takes its Intel path: the shim (built here if need
    be) before ``environ``'s (default ``os.environ``) ``LD_PRELOAD``. None where it is off, does not apply, is loaded
    in this process already, or the shim cannot be built (said in one line on stderr)."""
    environ = os.environ if environ is None else environ
    if fast_path_off() or fast_path_applies() is not None or shim_loaded():
        return None
    try:
        shim = str(build_shim())
    except (RuntimeError, OSError) as err:
        _warn(f"no MKL vendor shim ({' '.join(str(err).split())})")
        return None
    if any(c in shim for c in " :"):
        _warn(f"LD_PRELOAD cannot name {shim} (a space or ':' in the path; set SEQREC_CACHE_DIR elsewhere)")
        return None
    others = [p for p in environ.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p and p != shim]
    return ":".join([shim, *others])


def fast_path_or_reexec(argv: list[str] | None = None) -> None:
    """Called first by the command-line entry points with their own ``argv`` parameter: where the shim applies and
    this process does not have it, start this process's command again (``os.execve``: same pid, same arguments and
    interpreter options) with the shim in ``LD_PRELOAD``, which its child processes inherit. Returns (nothing
    changed) when ``argv`` is not None (a call from Python with its own arguments, not this process's command
    line), when the shim is loaded, off (``SEQREC_FAST_BLAS=0``), does not apply or cannot be built, or when this
    very process was started again already (``SEQREC_FAST_BLAS_REEXEC``: it can never loop)."""
    if argv is not None or shim_loaded() or fast_path_off():
        return
    if os.environ.get(REEXEC_ENV) == str(os.getpid()):
        _warn(f"started again with LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}, but the shim is not loaded")
        return
    command = list(getattr(sys, "orig_argv", []))               # the interpreter's own command line (Python 3.10+)
    if len(command) < 2 or sys.argv[0] in ("", "-") or not sys.executable:
        return                                                  # interactive, or a program read from stdin
    preload = fast_path_preload()
    if preload is None:
        return
    env = {**os.environ, "LD_PRELOAD": preload, REEXEC_ENV: str(os.getpid())}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *command[1:]], env)
    except OSError as err:
        _warn(f"could not start {sys.executable} again with the shim ({err})")


def _main(argv: list[str]) -> int:
    if argv == ["--preload"]:
        # the LD_PRELOAD value to use: the shim first where it applies, else the current one unchanged
        print(fast_path_preload() or os.environ.get("LD_PRELOAD", ""))
        return 0
    if argv:
        print("usage: python -m seqrec_lib.blas [--preload]", file=sys.stderr)
        return 2
    try:
        print(build_shim())
    except RuntimeError as err:
        print(f"seqrec_lib.blas: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
