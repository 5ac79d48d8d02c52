"""The MOJITO table (issue 16, docs/protocol.md §5): every row of MOJITO's comparison under both protocols, the
spread over training seeds and over evaluation cohorts kept apart, and a paired comparison over seeds.

- ``mojito_table(frame)``: one row per (dataset, label) of ``experiments.results_frame`` (models, then
  ablations, in the order of the runs), columns ``"{protocol} {metric}"`` (mean over seeds), ``... std`` (sample
  std over seeds; NaN with one seed) and, for the sampled protocol, ``... cohort std`` (the mean over seeds of
  the population std over the 5 cohorts), plus ``seeds`` (how many);
- ``format_mojito_table(table)``: the same as text, "mean ± std over seeds" and the cohort spread beside;
- ``paired_comparison(frame, reference)``: ``reference`` (MOJITO) minus every other row, seed by seed: mean and
  std of the difference, the paired t statistic and its two-sided p-value, and on how many seeds the reference
  is ahead;
- ``paired_t_test(diff)``: the paired t-test (``scipy.stats.ttest_1samp`` on the differences) that
  ``paired_comparison`` and ``paired_users`` share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

METRICS: tuple[str, ...] = ("NDCG@10", "HR@10")
PROTOCOLS: tuple[str, ...] = ("sampled", "full")


def _column(which: str, protocol: str, metric: str) -> str:
    return f"{which}_{protocol}_{metric}"


def _check(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame]
    if missing:
        available = sorted(c for c in frame.columns if c.startswith(("test_", "valid_")))
        raise KeyError(f"the results frame has no column(s) {missing}; available: {available}")
    return frame.drop_duplicates("run_id") if "run_id" in frame else frame


def mojito_table(frame: pd.DataFrame, metrics: Sequence[str] = METRICS, protocols: Sequence[str] = PROTOCOLS,
                 which: str = "test") -> pd.DataFrame:
    """Mean, std over seeds and (sampled protocol) cohort spread per (dataset, label), rows in the order of
    ``frame``; see the module docstring for the columns."""
    frame = _check(frame, [_column(which, p, m) for p in protocols for m in metrics])
    rows = []
    for (dataset, label), group in frame.groupby(["dataset", "label"], sort=False):
        row: dict[str, object] = {"dataset": dataset, "label": label, "seeds": int(group["seed"].nunique())}
        for protocol in protocols:
            for metric in metrics:
                column = _column(which, protocol, metric)
                values = group[column].astype(float)
                name = f"{protocol} {metric}"
                row[name] = values.mean()
                row[f"{name} std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
                if f"{column}_std" in group:
                    row[f"{name} cohort std"] = group[f"{column}_std"].astype(float).mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "label"])


def format_mojito_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``mojito_table`` as text: "mean ± std" over seeds ("mean" alone with one seed) per protocol and metric,
    and the cohort spread in its own column ("± std over cohorts")."""
    out = pd.DataFrame(index=table.index)
    out["seeds"] = table["seeds"]
    for name in [c for c in table.columns if c not in ("seeds",) and not c.endswith(" std")]:
        mean, std = table[name], table[f"{name} std"]
        out[name] = [f"{m:.{digits}f}" if np.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"
                     for m, s in zip(mean, std)]
        if f"{name} cohort std" in table:
            out[f"{name} (cohorts ±)"] = [f"± {s:.{digits}f}" for s in table[f"{name} cohort std"]]
    return out


def paired_t_test(diff: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """(t, two-sided p) of the paired t-test on per-pair differences ``diff`` (``scipy.stats.ttest_1samp``
    against 0, df = n − 1); (NaN, NaN) with fewer than 2 pairs or no spread (all differences equal: the sample
    std would be rounding, and t meaningless) or a NaN difference."""
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 1:
        raise ValueError(f"diff must be 1-D, got shape {diff.shape}")
    if len(diff) < 2 or not np.ptp(diff) > 0:
        return float("nan"), float("nan")
    result = stats.ttest_1samp(diff, 0.0)
    return float(result.statistic), float(result.pvalue)


def paired_comparison(frame: pd.DataFrame, reference: str = "MOJITO", metrics: Sequence[str] = METRICS,
                      protocols: Sequence[str] = PROTOCOLS, which: str = "test") -> pd.DataFrame:
    """``reference`` minus each other label on the same dataset, paired by training seed (seeds both have).

    One row per (dataset, label, protocol, metric): ``pairs``, ``mean_diff`` (> 0: the reference is ahead),
    ``std_diff`` (sample std of the per-seed differences), ``t`` and ``p`` (paired t-test, two-sided:
    ``paired_t_test``; NaN with fewer than 2 pairs or no spread), ``ahead`` (seeds on which the reference is
    ahead). With 3 seeds the test has little power: read ``mean_diff`` against ``std_diff`` and the seed and
    cohort spreads of the table.
    """
    frame = _check(frame, [_column(which, p, m) for p in protocols for m in metrics])
    rows = []
    for dataset, data in frame.groupby("dataset", sort=False):
        ref = data[data["label"] == reference].set_index("seed")
        if ref.empty:
            continue
        for label, other in data[data["label"] != reference].groupby("label", sort=False):
            other = other.set_index("seed")
            seeds = sorted(set(ref.index) & set(other.index))
            for protocol in protocols:
                for metric in metrics:
                    column = _column(which, protocol, metric)
                    diff = (ref.loc[seeds, column].astype(float) - other.loc[seeds, column].astype(float)).to_numpy()
                    n = len(diff)
                    std = float(np.std(diff, ddof=1)) if n > 1 else float("nan")
                    t, p = paired_t_test(diff)
                    rows.append({"dataset": dataset, "label": label, "protocol": protocol, "metric": metric,
                                 "pairs": n, "mean_diff": float(diff.mean()) if n else float("nan"),
                                 "std_diff": std, "t": t, "p": p, "ahead": int((diff > 0).sum())})
    columns = ["dataset", "label", "protocol", "metric", "pairs", "mean_diff", "std_diff", "t", "p", "ahead"]
    return pd.DataFrame(rows, columns=columns).set_index(["dataset", "label", "protocol", "metric"])
