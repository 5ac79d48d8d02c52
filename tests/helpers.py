"""Small shared builders for tests: random sequence data and batches (no files), the skip for tests that need
the real datasets, and the scripts of ``scripts/`` loaded as modules."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.data import get_spec
from seqrec_lib.data.sequences import SequenceData, build_splits


def random_sequences(n_users: int = 40, n_items: int = 30, min_len: int = 5, max_len: int = 20, seed: int = 0,
                     with_time: bool = False) -> SequenceData:
    """Random sequences without repeats inside a user (like the Amazon files)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n_users)
    seqs = [rng.choice(np.arange(1, n_items + 1), size=n, replace=False) for n in lengths]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate(seqs).astype(np.int64)
    ts = None
    if with_time:
        gaps = rng.integers(600, 3 * 86400, size=len(items))
        ts = 1_500_000_000 + np.cumsum(gaps)
    return SequenceData("random", n_users, n_items, offsets, items, timestamps=ts)


def random_batch(n_items: int = 30, B: int = 4, L: int = 8, seed: int = 0) -> Batch:
    """A left-padded batch with random lengths 1..L and targets at every non-pad position."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, n_items + 1, (B, L), generator=g)
    targets = torch.randint(1, n_items + 1, (B, L), generator=g)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    pad = torch.arange(L)[None, :] < (L - lengths)[:, None]
    return Batch(users=torch.arange(1, B + 1), items=items.masked_fill(pad, 0), targets=targets.masked_fill(pad, 0))


def tiny_split(seed: int = 0, max_len: int = 10, **kwargs):
    return build_splits(random_sequences(seed=seed, **kwargs), max_len=max_len)


def need_real_data(*files: str) -> Path:
    """``SEQREC_DATA_DIR``, or skip the test naming what is missing (``files`` relative to it, e.g. ``ml-100k/u.data``)."""
    root = os.environ.get("SEQREC_DATA_DIR")
    if not root:
        pytest.skip("SEQREC_DATA_DIR is not set (point it at a folder laid out as in docs/data.md §1)")
    missing = [f for f in files if not (Path(root) / f).exists()]
    if missing:
        pytest.skip(f"SEQREC_DATA_DIR={root} lacks {', '.join(missing)}")
    return Path(root)


def need_datasets(*names: str) -> Path:
    """``need_real_data`` for every source file of the named datasets (``beauty``, ``ml-100k``, ...)."""
    return need_real_data(*(f.path for name in names for f in get_spec(name).source_files))


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a fresh module (the scripts are no package and import only the library)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
