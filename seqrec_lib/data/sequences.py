"""Per-user chronological sequences (CSR), the leave-one-out split as padded device tensors, statistics.

The split follows docs/protocol.md §1 (ICLRec/S3-Rec): for a user sequence ``s`` of length n,

- train: input ``s[:-3]``, a target at every position (``s[1:-2]``);
- valid: input ``s[:-2]``, held-out item ``s[-2]`` (last column of ``targets``), history ``s[:-2]``;
- test:  input ``s[:-1]``, held-out item ``s[-1]``, history ``s[:-1]``.

Inputs are left-truncated to the last ``max_len`` items and left-padded with 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..batch import Batch
from .temporal import calendar_features
from .windows import window_ends

MIN_SEQUENCE_LENGTH = 4  # one training target, a validation and a test item


@dataclass(frozen=True)
class SequenceData:
    """Every user's interactions in time order, stored flat.

    User ``u`` (1..n_users) owns ``items[offsets[u-1]:offsets[u]]`` (and the same slice of
    ``timestamps``). Item ids are 1..n_items; 0 is reserved for padding.
    ``item_facets`` maps a facet name (e.g. "genre") to a list indexed by item id (index 0 = padding,
    an empty tuple) of that item's labels, for the case study and facet analyses.
    """

    name: str
    n_users: int
    n_items: int
    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None
    item_facets: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.offsets.shape != (self.n_users + 1,):
            raise ValueError(f"{self.name}: offsets must have n_users + 1 = {self.n_users + 1} entries, "
                             f"got shape {self.offsets.shape}")
        if int(self.offsets[-1]) != len(self.items):
            raise ValueError(f"{self.name}: offsets end at {int(self.offsets[-1])} but there are {len(self.items)} items")
        if self.timestamps is not None and len(self.timestamps) != len(self.items):
            raise ValueError(f"{self.name}: {len(self.timestamps)} timestamps for {len(self.items)} items")
        if len(self.items) and (self.items.min() < 1 or self.items.max() > self.n_items):
            raise ValueError(f"{self.name}: item ids must lie in 1..{self.n_items}, "
                             f"got {int(self.items.min())}..{int(self.items.max())}")

    @property
    def n_interactions(self) -> int:
        return int(len(self.items))

    @property
    def lengths(self) -> np.ndarray:
        """[n_users] sequence length of each user (user u at index u-1)."""
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        """The item ids of ``user`` (1-based), oldest first."""
        if not 1 <= user <= self.n_users:
            raise IndexError(f"{self.name}: user {user} is outside 1..{self.n_users}")
        return self.items[self.offsets[user - 1]:self.offsets[user]]

    def statistics(self) -> dict[str, float]:
        """Users, items, interactions, average length, density and length percentiles."""
        lengths = self.lengths
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "avg_length": float(lengths.mean()) if len(lengths) else 0.0,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "p50_length": float(np.percentile(lengths, 50)) if len(lengths) else 0.0,
            "p90_length": float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
            "max_length": int(lengths.max()) if len(lengths) else 0,
        }


@dataclass(frozen=True)
class History:
    """The items each user has seen before a split's target: the first ``lengths[u-1]`` items of user u.

    ``items`` [n] are all user sequences back to back, ``offsets`` [n_users] the start of user u's
    sequence at row u-1, and ``lengths`` [n_users] how many of its first items are history.
    """

    offsets: Tensor
    items: Tensor
    lengths: Tensor

    def entries(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """[B] user ids → (rows [n], items [n]): row b holds each item of user ``users[b]``'s history."""
        counts = self.lengths.index_select(0, users - 1)
        starts = self.offsets.index_select(0, users - 1)
        batch_row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        first = torch.cumsum(counts, 0) - counts
        within = torch.arange(int(counts.sum()), device=users.device) - first.repeat_interleave(counts)
        return batch_row, self.items.index_select(0, starts.repeat_interleave(counts) + within)

    def mask(self, users: Tensor, n_items: int) -> Tensor:
        """[B] user ids → [B, n_items + 1] bool, True where the item is in the user's history."""
        out = torch.zeros(len(users), n_items + 1, dtype=torch.bool, device=users.device)
        out[self.entries(users)] = True
        return out

    def item_counts(self, n_items: int) -> Tensor:
        """[n_items + 1] how often each item occurs in all users' histories."""
        flat = torch.arange(len(self.items), device=self.items.device)
        owner = torch.searchsorted(self.offsets, flat, right=True) - 1           # user row of each item
        kept = (flat - self.offsets[owner]) < self.lengths[owner]
        return torch.bincount(self.items[kept], minlength=n_items + 1)

    def to(self, device: torch.device | str) -> "History":
        return History(self.offsets.to(device), self.items.to(device), self.lengths.to(device))


@dataclass(frozen=True)
class SplitData:
    """The leave-one-out split of a dataset as device tensors.

    ``train`` has one sample per user with a target at every position; ``valid`` / ``test`` have the
    held-out item in the last column of ``targets``. ``history(split)`` gives the items masked at ranking
    time; the validation history (``s[:-2]``) is also each user's whole training set.
    """

    name: str
    n_users: int
    n_items: int
    max_len: int
    train: Batch
    valid: Batch
    test: Batch
    valid_history: History
    test_history: History

    def history(self, split: str) -> History:
        if split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        return self.valid_history if split == "valid" else self.test_history

    def eval_set(self, split: str) -> Batch:
        if split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        return self.valid if split == "valid" else self.test

    @property
    def has_time(self) -> bool:
        return self.train.time_feats is not None

    def to(self, device: torch.device | str) -> "SplitData":
        return SplitData(self.name, self.n_users, self.n_items, self.max_len, self.train.to(device),
                         self.valid.to(device), self.test.to(device), self.valid_history.to(device),
                         self.test_history.to(device))


def make_samples(data: SequenceData, users: np.ndarray, ends: np.ndarray, max_len: int,
                 time_features: np.ndarray | None = None) -> Batch:
    """One sample per (user, end): input ``s[:end]`` (last ``max_len`` items) and targets ``s[1:end+1]``.

    ``users`` [S] are 1-based user ids and ``ends`` [S] exclusive end indices into each user's sequence
    (1 <= end < length). ``time_features`` [n_interactions, F] are the per-interaction calendar features,
    gathered for inputs and targets (zeros at padding); ``data.timestamps``, when present, are gathered for
    the inputs as ``timestamps`` [S, L] (0 at padding). Returns CPU tensors.
    """
    users = np.asarray(users, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    lengths = data.lengths[users - 1]
    if np.any(ends < 1) or np.any(ends >= lengths):
        bad = int(np.flatnonzero((ends < 1) | (ends >= lengths))[0])
        raise ValueError(f"{data.name}: sample end {int(ends[bad])} for user {int(users[bad])} must lie in "
                         f"1..{int(lengths[bad]) - 1}")
    idx = ends[:, None] - max_len + np.arange(max_len)[None, :]          # [S, L] index into s
    valid = idx >= 0
    flat = data.offsets[users - 1][:, None] + np.where(valid, idx, 0)    # [S, L] index into items
    inputs = np.where(valid, data.items[flat], 0)
    targets = np.where(valid, data.items[flat + 1], 0)
    feats = target_feats = None
    if time_features is not None:
        feats = np.where(valid[..., None], time_features[flat], 0.0).astype(np.float32)
        target_feats = np.where(valid[..., None], time_features[flat + 1], 0.0).astype(np.float32)
    stamps = None if data.timestamps is None else np.where(valid, data.timestamps[flat], 0).astype(np.int64)
    return Batch(
        users=torch.from_numpy(users),
        items=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        time_feats=None if feats is None else torch.from_numpy(feats),
        target_time_feats=None if target_feats is None else torch.from_numpy(target_feats),
        timestamps=None if stamps is None else torch.from_numpy(stamps),
    )


def dataset_time_features(data: SequenceData) -> np.ndarray | None:
    """[n_interactions, 7] calendar features of every interaction, or None without timestamps."""
    if data.timestamps is None:
        return None
    return calendar_features(data.timestamps)


def build_splits(data: SequenceData, max_len: int = 50, device: torch.device | str = "cpu",
                 samples_step: int | None = None) -> SplitData:
    """The leave-one-out split of docs/protocol.md §1 as padded tensors on ``device``.

    ``samples_step`` None: one training sample per user (input ``s[:-3]``, a target at every position).
    An int: MOJITO's training windows over ``s[:-2]`` with that step (docs/data.md §8, ``window_ends``).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    lengths = data.lengths
    short = np.flatnonzero(lengths < MIN_SEQUENCE_LENGTH)
    if len(short):
        raise ValueError(f"{data.name}: user {int(short[0]) + 1} has {int(lengths[short[0]])} interactions; "
                         f"leave-one-out needs at least {MIN_SEQUENCE_LENGTH} (apply a k-core first)")
    users = np.arange(1, data.n_users + 1, dtype=np.int64)
    train_users, train_ends = ((users, lengths - 3) if samples_step is None
                               else window_ends(lengths - 2, samples_step, max_len))
    feats = dataset_time_features(data)
    offsets = torch.from_numpy(data.offsets[:-1].astype(np.int64))
    items = torch.from_numpy(data.items.astype(np.int64))
    n = torch.from_numpy(lengths.astype(np.int64))
    split = SplitData(
        name=data.name,
        n_users=data.n_users,
        n_items=data.n_items,
        max_len=max_len,
        train=make_samples(data, train_users, train_ends, max_len, feats),
        valid=make_samples(data, users, lengths - 2, max_len, feats),
        test=make_samples(data, users, lengths - 1, max_len, feats),
        valid_history=History(offsets, items, n - 2),
        test_history=History(offsets, items, n - 1),
    )
    return split.to(device)


def data_fingerprint(split: SplitData) -> dict[str, Any]:
    """Name, sizes and a SHA-256 of the split's item and target tensors (train, valid, test)."""
    digest = hashlib.sha256()
    for batch in (split.train, split.valid, split.test):
        for t in (batch.items, batch.targets):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return {"name": split.name, "n_users": split.n_users, "n_items": split.n_items, "max_len": split.max_len,
            "n_train_targets": int((split.train.targets > 0).sum()), "sha256": digest.hexdigest()}
