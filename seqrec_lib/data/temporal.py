"""The 7 UTC calendar features of MOJITO (docs/data.md §7), computed as the official code does."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
