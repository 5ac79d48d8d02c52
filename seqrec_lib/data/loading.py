"""``load_dataset``: registry → verified raw files → parse → preprocess → ``SequenceData``, with a disk cache.

Processed datasets are cached as ``<name>-<key>.npz`` (arrays) plus ``<name>-<key>.json`` (facets and
provenance) under the cache dir. The key hashes the source files' sha256 and every preprocessing parameter,
so a changed source or parameter gives a new entry. An unwritable cache only warns; the data dir is never
written unless a file has to be downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import __version__
from ..records import temp_file_beside
from .download import ensure_file, file_digests, resolve_data_dir
from .parsers import DataFormatError
from .preprocess import Preprocessing, preprocess
from .registry import DatasetSpec, get_spec
from .sequences import SequenceData
from .synthetic import SyntheticConfig, generate_synthetic

ENV_CACHE_DIR = "SEQREC_CACHE_DIR"
CACHE_FORMAT = 1


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else env ``SEQREC_CACHE_DIR``, else ``~/.cache/seqrec``."""
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_CACHE_DIR) or Path.home() / ".cache" / "seqrec"
    return Path(cache_dir).expanduser().absolute()


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                 cache_dir: str | Path | None = None, synthetic: SyntheticConfig | None = None,
                 preprocessing: Preprocessing | None = None) -> SequenceData:
    """The dataset ``name`` as chronological per-user sequences.

    Raw files are looked up under ``data_dir`` (see ``resolve_data_dir``), verified and downloaded if
    missing and ``download``; ``preprocessing`` overrides the registry's (e.g. the ML-20m variants);
    ``synthetic`` configures the ``synthetic`` dataset (default ``SyntheticConfig()``), which has no files
    and is not cached.
    """
    spec = get_spec(name)
    if spec.interactions is None:
        if preprocessing is not None:
            raise ValueError(f"preprocessing= does not apply to the generated dataset {name!r}")
        return generate_synthetic(synthetic)[0]
    if synthetic is not None:
        raise ValueError(f"synthetic= only applies to the 'synthetic' dataset, not {name!r}")
    config = preprocessing or spec.preprocessing
    root = resolve_data_dir(data_dir)
    paths = {f.path: ensure_file(f, root, download) for f in spec.source_files}
    for f in spec.source_files:
        if not f.checksums:
            check_whole_lines(paths[f.path])
    digests = {f.path: f.sha256 or file_digests(paths[f.path], ["sha256"])["sha256"] for f in spec.source_files}
    key = cache_key(spec, config, digests)
    cache = resolve_cache_dir(cache_dir)
    cached = _read_cache(cache, spec.name, key)
    if cached is not None:
        return cached
    provenance = {
        "dataset": spec.name,
        "description": spec.description,
        "sources": {rel: {"sha256": digests[rel], "path": str(paths[rel])} for rel in paths},
        "parser": spec.parser.__name__,
        "notes": list(spec.notes),
        "cache_key": key,
        "seqrec_lib_version": __version__,
    }
    facets = tuple(source.reader(*(paths[f.path] for f in source.files)) for source in spec.facets)
    data = preprocess(spec.parser(paths[spec.interactions.path]), config, spec.name, facets, provenance)
    if preprocessing is None:
        _check_expected(spec, data)
    _write_cache(cache, spec.name, key, data)
    return data


def cache_key(spec: DatasetSpec, config: Preprocessing, digests: dict[str, str]) -> str:
    """sha256 over the cache format, dataset, parser, facet readers, source sha256s and preprocessing."""
    payload = {
        "format": CACHE_FORMAT,
        "dataset": spec.name,
        "parser": spec.parser.__name__ if spec.parser else None,
        "facets": [source.reader.__name__ for source in spec.facets],
        "sources": digests,
        "preprocessing": asdict(config),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_whole_lines(path: str | Path) -> None:
    """Raise ``DataFormatError`` (file and line) when a non-empty ``path`` does not end with a line end: a text
    file cut off mid-line. Its last line may still parse (``1,2,4.0,97`` cut to ``1,2,4.0,9``), so a file that no
    checksum verifies is checked this way before it is read."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) + 1
    raise DataFormatError(path, lines, "the file ends in the middle of this line (no line end after it), so it "
                                       "looks cut off; download or copy it again (a complete file without a final "
                                       "line end: add one)")


def _check_expected(spec: DatasetSpec, data: SequenceData) -> None:
    """Warn when the registry's expected counts are not met (a different file or a bug)."""
    expected = spec.expected
    if expected is None:
        return
    got = (data.n_users, data.n_items, data.n_interactions)
    want = (expected.users, expected.items, expected.interactions)
    if got != want:
        warnings.warn(f"{spec.name}: got users/items/interactions {got}, expected {want} ({expected.source})",
                      stacklevel=3)


def _cache_paths(cache: Path, name: str, key: str) -> tuple[Path, Path]:
    stem = f"{name}-{key[:24]}"
    return cache / f"{stem}.npz", cache / f"{stem}.json"


def _read_cache(cache: Path, name: str, key: str) -> SequenceData | None:
    """The cached dataset, or None if absent; an unreadable entry warns and is rebuilt."""
    arrays_path, meta_path = _cache_paths(cache, name, key)
    if not (arrays_path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta["provenance"]["cache_key"] != key:
            raise ValueError(f"it holds key {meta['provenance']['cache_key']}")
        with open(arrays_path, "rb") as handle, np.load(handle) as arrays:   # closed even when corrupt
            return SequenceData(
                name=meta["name"],
                n_users=meta["n_users"],
                n_items=meta["n_items"],
                offsets=arrays["offsets"],
                items=arrays["items"],
                timestamps=arrays["timestamps"] if "timestamps" in arrays.files else None,
                item_facets={f: [tuple(labels) for labels in rows] for f, rows in meta["item_facets"].items()},
                provenance=meta["provenance"],
            )
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        warnings.warn(f"ignoring the unreadable cache entry {arrays_path} ({type(err).__name__}: {reason}); "
                      f"rebuilding it", stacklevel=3)
        return None


def _write_cache(cache: Path, name: str, key: str, data: SequenceData) -> None:
    """Write both cache files, each atomically; any OSError only warns."""
    arrays_path, meta_path = _cache_paths(cache, name, key)
    arrays: dict[str, Any] = {"offsets": data.offsets, "items": data.items}
    if data.timestamps is not None:
        arrays["timestamps"] = data.timestamps
    meta = {"name": data.name, "n_users": data.n_users, "n_items": data.n_items,
            "item_facets": data.item_facets, "provenance": data.provenance}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _atomic_write(arrays_path, lambda handle: np.savez(handle, **arrays))
        _atomic_write(meta_path, lambda handle: handle.write(json.dumps(meta).encode()))
    except OSError as err:
        warnings.warn(f"could not write the dataset cache in {cache} ({err}); continuing without it", stacklevel=3)


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write`` into a temporary file beside ``path``, then move it into place."""
    fd, tmp = temp_file_beside(path, ".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
