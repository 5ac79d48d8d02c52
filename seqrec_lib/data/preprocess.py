"""Interactions → ``SequenceData``: filters, iterative k-core, re-indexing, stable chronological sort.

The steps run in the order of ``Preprocessing``'s fields: rating threshold, minimum user length, each
user's most recent ``keep_last`` interactions, then the k-core on unique (user, item) pairs until a fixed
point (docs/data.md §5: repeats survive because surviving pairs are joined back onto all rows). Users and
items are then numbered 1..n in order of first appearance in the filtered file, so files whose ids are
already 1..n in that order (S3-Rec) keep them, and each user's interactions are sorted by (timestamp,
original row order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .parsers import DataFormatError, Interactions, ItemFacets
from .sequences import SequenceData


@dataclass(frozen=True)
class KCore:
    """Keep users with at least ``user_min`` distinct items and items with at least ``item_min`` distinct users."""

    user_min: int
    item_min: int

    def __post_init__(self) -> None:
        if self.user_min < 1 or self.item_min < 1:
            raise ValueError(f"KCore thresholds must be at least 1, got user_min={self.user_min}, "
                             f"item_min={self.item_min}")


@dataclass(frozen=True)
class Preprocessing:
    """How raw interactions become sequences; every field takes part in the cache key.

    - ``min_rating``: keep only interactions rated at least this (implicit feedback from ratings);
    - ``min_user_interactions``: then keep users with at least this many interactions;
    - ``keep_last``: then keep each user's most recent ``keep_last`` interactions (chronological order);
    - ``kcore``: then the iterative k-core.
    """

    min_rating: float | None = None
    min_user_interactions: int | None = None
    keep_last: int | None = None
    kcore: KCore | None = None

    def __post_init__(self) -> None:
        for name in ("min_user_interactions", "keep_last"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Preprocessing.{name} must be at least 1 or None, got {value}")


def first_appearance_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] raw ids → ([N] ids 1..n numbered by first appearance, [n] raw id of each new id (new id i at i-1))."""
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64) + 1, np.asarray(uniques)


def chronological_order(users: np.ndarray, timestamps: np.ndarray | None) -> np.ndarray:
    """[N] permutation sorting rows by user, then timestamp, then original row order (stable).

    Without timestamps the file order is the time order (S3-Rec files are already sorted).
    """
    if timestamps is None:
        return np.argsort(users, kind="stable")
    return np.lexsort((timestamps, users))  # lexsort is stable: ties keep their row order


def kcore_mask(users: np.ndarray, items: np.ndarray, kcore: KCore) -> np.ndarray:
    """[N] bool: rows whose (user, item) pair survives the iterative k-core on unique pairs.

    Alternates "users with >= user_min distinct items" and "items with >= item_min distinct users" until
    nothing changes; the result is the unique largest sub-table meeting both thresholds.
    """
    u, user_values = pd.factorize(users)
    i, item_values = pd.factorize(items)
    n_users, n_items = len(user_values), len(item_values)
    pairs, row_pair = np.unique(u.astype(np.int64) * n_items + i, return_inverse=True)
    pair_user, pair_item = pairs // n_items, pairs % n_items
    alive = np.ones(len(pairs), dtype=bool)
    while True:
        user_ok = np.bincount(pair_user[alive], minlength=n_users) >= kcore.user_min
        kept = alive & user_ok[pair_user]
        item_ok = np.bincount(pair_item[kept], minlength=n_items) >= kcore.item_min
        kept &= item_ok[pair_item]
        if kept.sum() == alive.sum():
            return alive[row_pair.reshape(-1)]
        alive = kept


def _keep_last_mask(users: np.ndarray, timestamps: np.ndarray | None, keep_last: int) -> np.ndarray:
    """[N] bool: each user's ``keep_last`` most recent rows (chronological order as above)."""
    codes, _ = pd.factorize(users)
    order = chronological_order(codes, timestamps)
    sorted_codes = codes[order]
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    from_end = counts[sorted_codes] - 1 - (np.arange(len(order)) - starts[sorted_codes])
    mask = np.zeros(len(users), dtype=bool)
    mask[order[from_end < keep_last]] = True
    return mask


def apply_filters(data: Interactions, config: Preprocessing) -> tuple[Interactions, dict[str, int]]:
    """The filters of ``config`` in order → (remaining rows in file order, row count after each step)."""
    counts = {"raw": len(data)}
    if config.min_rating is not None:
        if data.ratings is None:
            raise ValueError(f"Preprocessing.min_rating={config.min_rating} needs ratings, but "
                             f"{data.source or 'the interactions'} has none")
        data = data.select(data.ratings >= config.min_rating)
        counts["min_rating"] = len(data)
    if config.min_user_interactions is not None:
        codes, _ = pd.factorize(data.users)
        data = data.select(np.bincount(codes)[codes] >= config.min_user_interactions)
        counts["min_user_interactions"] = len(data)
    if config.keep_last is not None:
        data = data.select(_keep_last_mask(data.users, data.timestamps, config.keep_last))
        counts["keep_last"] = len(data)
    if config.kcore is not None:
        data = data.select(kcore_mask(data.users, data.items, config.kcore))
        counts["kcore"] = len(data)
    return data, counts


def facet_lists(facets: ItemFacets, raw_items: np.ndarray) -> list[tuple[str, ...]]:
    """The labels of every new item id (index = id; index 0 = padding, an empty tuple)."""
    raw = raw_items.tolist()
    missing = [item for item in raw if item not in facets.labels]
    if missing:
        raise DataFormatError(facets.source, None, f"{len(missing)} item(s) have no {facets.name!r} entry, "
                                                   f"e.g. item {missing[0]!r}")
    return [()] + [facets.labels[item] for item in raw]


def preprocess(data: Interactions, config: Preprocessing, name: str, facets: tuple[ItemFacets, ...] = (),
               provenance: dict[str, Any] | None = None) -> SequenceData:
    """Filter, re-index (first appearance), sort each user chronologically and assemble ``SequenceData``.

    ``provenance`` (sources, checksums, ...) is extended with the preprocessing parameters and row counts.
    """
    kept, counts = apply_filters(data, config)
    if len(kept) == 0:
        raise ValueError(f"{name}: no interactions are left after preprocessing {config} (rows: {counts})")
    users, _ = first_appearance_ids(kept.users)
    items, raw_items = first_appearance_ids(kept.items)
    n_users, n_items = int(users.max()), int(items.max())
    order = chronological_order(users, kept.timestamps)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users + 1)[1:], out=offsets[1:])
    info = dict(provenance or {})
    info.update(preprocessing=asdict(config), row_counts=counts)
    return SequenceData(
        name=name,
        n_users=n_users,
        n_items=n_items,
        offsets=offsets,
        items=items[order],
        timestamps=None if kept.timestamps is None else kept.timestamps[order],
        item_facets={f.name: facet_lists(f, raw_items) for f in facets},
        provenance=info,
    )
