"""The 7 UTC calendar features of MOJITO (docs/data.md §7), computed as the official code does; how coarse
a dataset's timestamps are (ties and gaps at the end of the sequences, docs/data.md §6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .sequences import SequenceData

CALENDAR_FEATURES: tuple[str, ...] = ("year", "month", "day", "dayofweek", "dayofyear", "week", "hour")


def calendar_features(timestamps: np.ndarray, min_year: int | None = None) -> np.ndarray:
    """[N] unix seconds → [N, 7] float32 features (naive UTC), in the order of ``CALENDAR_FEATURES``.

    year is 1-based relative to ``min_year`` (default: the smallest year in ``timestamps``); day of
    week is Mon = 1 … Sun = 7; week is the ISO week (1..53); hour is 0..23. Features go raw (not
    normalised, not one-hot) into the Mercer encoder.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.ndim != 1:
        raise ValueError(f"calendar_features expects a 1-d array of unix seconds, got shape {ts.shape}")
    if ts.size == 0:
        return np.zeros((0, len(CALENDAR_FEATURES)), dtype=np.float32)
    dt = pd.Series(pd.to_datetime(ts, unit="s"))
    year = dt.dt.year.to_numpy()
    base = int(year.min()) if min_year is None else int(min_year)
    cols = [
        year - base + 1,
        dt.dt.month.to_numpy(),
        dt.dt.day.to_numpy(),
        dt.dt.day_of_week.to_numpy() + 1,
        dt.dt.day_of_year.to_numpy(),
        dt.dt.isocalendar().week.to_numpy(dtype=np.int64),
        dt.dt.hour.to_numpy(),
    ]
    return np.stack(cols, axis=1).astype(np.float32)


HOUR = 3600
GAP_BINS: tuple[tuple[str, float], ...] = (("same second", 0), ("1 s – 1 min", 60), ("1 min – 1 h", HOUR),
                                           ("1 h – 1 day", 86400), ("1 day – 1 week", 7 * 86400),
                                           ("> 1 week", np.inf))
"""The gap classes of ``gap_table``: (name, largest gap in seconds, included), in order."""


def _gaps(data: SequenceData) -> tuple[np.ndarray, np.ndarray]:
    """(gaps [n_interactions - n_users] in seconds between consecutive interactions of a user, gaps [n_users]
    from each user's validation item to its test item); the sequences are in time order, so gaps are >= 0."""
    if data.timestamps is None:
        raise ValueError(f"{data.name} has no timestamps")
    ts = np.asarray(data.timestamps, dtype=np.int64)
    starts, ends = data.offsets[:-1], data.offsets[1:]
    same_user = np.ones(len(ts), dtype=bool)
    same_user[starts[ends > starts]] = False                                 # the first item of every user
    consecutive = (ts - np.concatenate([[0], ts[:-1]]))[same_user]
    long_enough = ends - starts >= 2
    last = ends[long_enough] - 1
    return consecutive, ts[last] - ts[last - 1]


def timestamp_ties(data: SequenceData, within: int = HOUR) -> dict[str, float]:
    """How coarse ``data``'s timestamps are where the models are tested (docs/data.md §6), as shares in [0, 1]:

    - ``consecutive_ties``: consecutive interactions of a user that share their timestamp;
    - ``test_ties_valid``: users whose test item (last) has the timestamp of their validation item (second
      to last), so the test target's calendar context is the validation item's;
    - ``test_within_hour``: users whose test item comes at most ``within`` seconds (an hour) after the
      validation item;
    - ``median_test_gap_s``: the median of that gap, in seconds.
    """
    consecutive, test = _gaps(data)
    return {"consecutive_ties": float(np.mean(consecutive == 0)) if len(consecutive) else float("nan"),
            "test_ties_valid": float(np.mean(test == 0)) if len(test) else float("nan"),
            "test_within_hour": float(np.mean(test <= within)) if len(test) else float("nan"),
            "median_test_gap_s": float(np.median(test)) if len(test) else float("nan")}


def gap_table(data: SequenceData) -> pd.DataFrame:
    """The share of gaps in each class of ``GAP_BINS``: rows (kind, gap) with kind "consecutive" (every pair of
    consecutive interactions of a user) and "validation → test" (each user's last two items), column
    ``share`` (summing to 1 per kind) and ``count``."""
    rows = []
    for kind, gaps in zip(("consecutive", "validation → test"), _gaps(data)):
        limits = np.array([limit for _, limit in GAP_BINS], dtype=float)
        counts = np.bincount(np.searchsorted(limits, gaps, side="left"), minlength=len(GAP_BINS))
        for (name, _), count in zip(GAP_BINS, counts):
            rows.append({"kind": kind, "gap": name, "count": int(count), "share": count / max(len(gaps), 1)})
    return pd.DataFrame(rows)
