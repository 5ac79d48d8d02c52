"""Provenance and result records: package versions, git commit, device, config hashes, atomic JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import platform
import secrets
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .blas import cpuinfo, mkl_path

_PACKAGES = ("seqrec_lib", "torch", "numpy", "pandas", "pyarrow", "matplotlib", "papermill")


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and numpy/torch scalars → plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


LATE_FIELD = {"keyed_only_if_changed": True}
"""``dataclasses.field(metadata=LATE_FIELD)`` marks a setting added after records existed: run keys include it
only when it differs from its default, so every earlier record keeps its key (and stays "done")."""


def key_view(obj: Any) -> Any:
    """``to_jsonable(obj)`` for hashing: dataclass fields marked ``LATE_FIELD`` are left out at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: key_view(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("keyed_only_if_changed") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, dict):
        return {str(k): key_view(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [key_view(v) for v in obj]
    return to_jsonable(obj)


def config_hash(obj: Any, length: int = 12) -> str:
    """A stable short hash of a (dataclass) configuration (``key_view`` of it)."""
    text = json.dumps(key_view(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the working tree at ``path`` (default: this package's), with '+dirty' if modified. A copied
    tree (a lent GPU machine) names its commit in ``SEQREC_GIT_COMMIT``, marked '(copied tree)': the copy's own git
    may be another commit's (seen there: an older HEAD beside the current files, reported '+dirty')."""
    copied = os.environ.get("SEQREC_GIT_COMMIT")
    if copied:
        return f"{copied} (copied tree)"
    cwd = path or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    changed = modified_files(cwd)
    return None if changed is None else sha + ("+dirty" if changed else "")


def modified_files(path: Path | None = None) -> list[str] | None:
    """The tracked files of the git tree at ``path`` (default: this package's) with uncommitted changes, staged or
    not, as ``git status --porcelain`` names them (relative to the repository's root; untracked files do not count):
    what makes ``git_commit`` say '+dirty'. None where git cannot tell."""
    cwd = path or Path(__file__).resolve().parent
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in status.splitlines() if line.strip()]


def cpu_model() -> str:
    """The CPU's model name and the instruction sets that decide fp32/bf16 matmul speed, e.g. 'AMD EPYC, AVX512, native
    bf16: avx512_bf16' (from /proc/cpuinfo where it exists): sessions may land on different CPUs, so speeds and run
    times are only comparable with this beside them."""
    info = cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    native_bf16 = " ".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) or "none"
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, {mkl_path()})"


CODE_COMMIT = git_commit()
"""The commit of this package's code when this process imported it: the code a run executes. A long run's record
is written hours later, when HEAD may have moved on; ``provenance`` reports this one."""


def provenance(device: torch.device) -> dict[str, Any]:
    """Versions, commit (``CODE_COMMIT``: the code this process imported), device, host and time of a run."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "git_commit": CODE_COMMIT,
        "device": str(device),
        "device_name": device_name(device),
        "host": platform.node(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def temp_file_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new empty hidden file ``.<name>.<random><suffix>`` in ``path``'s folder, opened for writing: (fd, its path).
    Like ``tempfile.mkstemp``, but created with the permissions of any new file (0666 less the umask: 0644 under
    the usual 022), not mkstemp's 0600, so a file moved into place reads like one written directly."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = Path(path).parent / f".{Path(path).name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(name, flags, 0o666), str(name)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


class CorruptFileError(ValueError):
    """A run's file (``last.pt``, ``best.pt``, ``result.json``) cannot be read: truncated or corrupt. ``path`` names
    it; the message says what to do."""

    def __init__(self, path: str | Path, reason: str, remedy: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} is unreadable, truncated or corrupt ({reason}); {remedy}")


def _reason(err: BaseException) -> str:
    """The first line of ``err``'s message, shortened: torch's and zipfile's run over several lines."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def read_json_file(path: str | Path, remedy: str = "delete it to make it again") -> Any:
    """The JSON in ``path``; ``CorruptFileError`` (naming the file and ``remedy``) when it is not whole JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFileError(path, _reason(err), remedy) from None


def load_torch_file(path: str | Path, remedy: str = "delete it to make it again", **kwargs: Any) -> Any:
    """``torch.load(path, **kwargs)``; ``CorruptFileError`` (naming the file and ``remedy``) when the file is
    truncated or not a torch file. A missing file still raises ``FileNotFoundError``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return torch.load(path, **kwargs)
    except (RuntimeError, EOFError, ValueError, KeyError, AttributeError, ImportError, IndexError, TypeError,
            UnicodeDecodeError, OSError, pickle.UnpicklingError) as err:
        raise CorruptFileError(path, _reason(err), remedy) from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(obj), f, indent=2, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch_atomic(obj: Any, path: Path) -> None:
    """torch.save through a temp file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
