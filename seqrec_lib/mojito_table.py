"""The MOJITO table (issue 16, docs/protocol.md §5): every row of MOJITO's comparison under both protocols, the
spread over training seeds and over evaluation cohorts kept apart, and a paired comparison over seeds.

- ``mojito_table(frame)``: one row per (dataset, label) of ``experiments.results_frame`` (models, then
  ablations, in the order of the runs), columns ``"{protocol} {metric}"`` (mean over seeds), ``... std`` (sample
  std over seeds; NaN with one seed) and, for the sampled protocol, ``... cohort std`` (the mean over seeds of
  the population std over the 5 cohorts), plus ``seeds`` (how many);
- ``format_mojito_table(table)``: the same as text, "mean ± std over seeds" and the cohort spread beside;
- ``paired_comparison(frame, reference)``: ``reference`` (MOJITO) minus every other row, seed by seed: mean and
  std of the difference, the paired t statistic and its two-sided p-value, and on how many seeds the reference
  is ahead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

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


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (a whole number >= 1) degrees of freedom (Abramowitz & Stegun
    26.7.3-4, exact for integer df)."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a whole number >= 1, got {df}")
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:                                       # odd: (2/π)(θ + sinθ cosθ (1 + 2/3 c² + 2·4/(3·5) c⁴ + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + s * math.cos(theta) * total)
    else:                                            # even: sinθ (1 + 1/2 c² + 1·3/(2·4) c⁴ + ...)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        inside = s * total
    return float(min(1.0, max(0.0, 1.0 - inside)))


def paired_comparison(frame: pd.DataFrame, reference: str = "MOJITO", metrics: Sequence[str] = METRICS,
                      protocols: Sequence[str] = PROTOCOLS, which: str = "test") -> pd.DataFrame:
    """``reference`` minus each other label on the same dataset, paired by training seed (seeds both have).

    One row per (dataset, label, protocol, metric): ``pairs``, ``mean_diff`` (> 0: the reference is ahead),
    ``std_diff`` (sample std of the per-seed differences), ``t`` and ``p`` (paired t-test, two-sided; NaN with
    fewer than 2 pairs or no spread), ``ahead`` (seeds on which the reference is ahead). With 3 seeds the test
    has little power: read ``mean_diff`` against ``std_diff`` and the seed and cohort spreads of the table.
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
                    t = float(diff.mean() / (std / math.sqrt(n))) if n > 1 and std > 0 else float("nan")
                    rows.append({"dataset": dataset, "label": label, "protocol": protocol, "metric": metric,
                                 "pairs": n, "mean_diff": float(diff.mean()) if n else float("nan"),
                                 "std_diff": std, "t": t, "p": t_two_sided_p(t, n - 1) if n > 1 else float("nan"),
                                 "ahead": int((diff > 0).sum())})
    columns = ["dataset", "label", "protocol", "metric", "pairs", "mean_diff", "std_diff", "t", "p", "ahead"]
    return pd.DataFrame(rows, columns=columns).set_index(["dataset", "label", "protocol", "metric"])
