"""Local raw files: find the data dir, verify checksums, download (progress bar, atomic) and unzip members.

Nothing is ever written in place: downloads and extracted members go to a temporary file in the target
folder, are verified, then moved into place with ``os.replace``. A file that cannot be had (no network,
``download=False``, no official URL, unwritable folder) raises ``DataNotFoundError`` saying which file,
where to put it and where to get it; folders created for it are removed again, so a failure leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from ..records import temp_file_beside
from .parsers import DataFormatError
from .registry import SourceFile

ENV_DATA_DIR = "SEQREC_DATA_DIR"
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]  # the repository root when running from a checkout
_CHUNK = 1 << 20
_TIMEOUT_S = 60


class DataNotFoundError(FileNotFoundError):
    """A raw file is missing and could not be downloaded; the message says where to put it and the URL."""


class ChecksumMismatchError(ValueError):
    """A file's checksum differs from the registered one; the message names the file, expected and actual."""


def default_data_dir() -> Path:
    """``data/`` of the repository checkout this package runs from, whatever the working directory (the
    notebooks run in ``notebooks/``); ``./data`` when the package is installed outside a checkout."""
    if (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "seqrec_lib").is_dir():
        return CHECKOUT_ROOT / "data"
    return Path("data").absolute()


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The raw-data folder (absolute): ``data_dir`` if given, else env ``SEQREC_DATA_DIR`` (both relative to
    the working directory), else ``default_data_dir()``."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or default_data_dir()
    return Path(data_dir).expanduser().absolute()


@contextmanager
def _folder_removed_on_failure(folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents; if the block raises, remove again those of them that are
    still empty, so a failed download or extraction leaves no empty folders behind."""
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        for path in created:
            try:
                path.rmdir()
            except OSError:  # not empty (someone else wrote there) or never created
                break
        raise


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A new empty temporary file in ``path``'s folder (hidden, ``.part``), deleted at the end unless it was
    moved into place."""
    fd, name = temp_file_beside(path, ".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def file_digests(path: str | Path, algorithms: Iterable[str]) -> dict[str, str]:
    """Hex digests of a file in one pass; algorithms: ``sha256``, ``md5``, ``git_blob`` (git hash-object)."""
    path = Path(path)
    hashers = {}
    for name in algorithms:
        if name == "git_blob":
            hashers[name] = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
        elif name in ("sha256", "md5"):
            hashers[name] = hashlib.new(name)
        else:
            raise ValueError(f"unknown checksum algorithm {name!r}; expected sha256, md5 or git_blob")
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify_checksums(path: str | Path, expected: dict[str, str], label: str) -> None:
    """Raise ChecksumMismatchError unless ``path`` has every expected digest (``label`` names it)."""
    if not expected:
        return
    actual = file_digests(path, expected)
    for name, want in expected.items():
        if actual[name] != want.lower():
            raise ChecksumMismatchError(
                f"{label}: {name} checksum mismatch: expected {want}, got {actual[name]}. The file is corrupt, "
                f"truncated or a different version; delete it and get the official file.")


def ensure_file(source: SourceFile, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The local path of ``source`` under the data dir, verified against its known checksums.

    A missing file is downloaded (or extracted from its archive, which is downloaded if missing and kept
    for the other members). Raises DataNotFoundError when that is impossible, ChecksumMismatchError on a
    wrong file and DataFormatError on a corrupt archive.
    """
    root = resolve_data_dir(data_dir)
    target = root / source.path
    if target.exists():
        verify_checksums(target, source.checksums, str(target))
        return target
    if source.archive is None:
        _fetch(source, source.url, target, source.checksums, root, download)
        return target
    archive = root / source.archive.path
    if archive.exists():
        verify_checksums(archive, source.archive.checksums, str(archive))
    else:
        _fetch(source, source.archive.url, archive, source.archive.checksums, root, download)
    _extract(archive, source, root)
    return target


def _missing_message(source: SourceFile, root: Path, reason: str) -> str:
    """What is missing, where it goes, where to get it, and why it was not fetched."""
    target = root / source.path
    lines = [f"Data file {source.path} not found at {target}."]
    if source.archive is not None:
        lines.append(f"Download {source.archive.url} and either put the archive at {root / source.archive.path} "
                     f"(its member {source.member!r} is extracted automatically) or unzip that member to {target}.")
    elif source.url is not None:
        lines.append(f"Download {source.url} and put it at {target}.")
    else:
        lines.append(f"There is no official download: {source.note or 'obtain the file yourself'}. "
                     f"Put it at {target}.")
    lines.append(f"(Data dir {root}: pass data_dir=... or set {ENV_DATA_DIR}.) Not fetched: {reason}.")
    return "\n".join(lines)


def _fetch(source: SourceFile, url: str | None, dest: Path, checksums: dict[str, str], root: Path,
           download: bool) -> None:
    """Download ``url`` to ``dest`` through a verified temporary file, or raise DataNotFoundError."""
    if url is None:
        raise DataNotFoundError(_missing_message(source, root, "no download URL"))
    if not download:
        raise DataNotFoundError(_missing_message(source, root, "downloads are disabled (download=False)"))
    try:
        with _folder_removed_on_failure(dest.parent), _temporary_beside(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                size = response.headers.get("Content-Length")
                with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"downloading {dest.name}") as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            verify_checksums(tmp, checksums, f"{dest.name} downloaded from {url}")
            os.replace(tmp, dest)
    except OSError as err:  # includes URLError, HTTPError, timeouts and unwritable folders
        raise DataNotFoundError(_missing_message(source, root, f"download of {url} failed ({err})")) from err


def _extract(archive: Path, source: SourceFile, root: Path) -> None:
    """Unzip ``source.member`` of ``archive`` to its place under ``root`` through a verified temporary file."""
    target = root / source.path
    try:
        with zipfile.ZipFile(archive) as bundle:
            if source.member not in bundle.namelist():
                raise DataFormatError(archive, None, f"the archive has no member {source.member!r} "
                                                     f"(members: {', '.join(bundle.namelist()[:20])})")
            with _folder_removed_on_failure(target.parent), _temporary_beside(target) as tmp:
                with bundle.open(source.member) as member, open(tmp, "wb") as out:
                    shutil.copyfileobj(member, out, _CHUNK)
                verify_checksums(tmp, source.checksums, f"{source.member} extracted from {archive}")
                os.replace(tmp, target)
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise DataFormatError(archive, None, f"corrupt or truncated zip archive ({err}); delete it and download "
                                             f"it again from {source.download_url}") from err
    except OSError as err:
        raise DataNotFoundError(_missing_message(source, root, f"could not extract it from {archive} ({err})")) \
            from err
