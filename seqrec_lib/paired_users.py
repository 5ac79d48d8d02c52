"""Per-user paired comparison of models on one test set (FAME Table 2's rows, issue 12).

Seeds give three numbers per model; users give thousands. Every model here is scored on the same test users
(``evaluation.user_ranks``), so two models can be compared user by user: for each user, the reference's metric
minus the other's, averaged over the training seeds both have (the same seed pairs the runs, as in
``mojito_table.paired_comparison``). Over users: the mean difference with a percentile-bootstrap interval
(``analysis.bootstrap_ci``), a paired t-test (``mojito_table.paired_t_test``), and how many users each model
serves better. The interval and the test are over users for the seeds trained: they say how sure we are about
*these* models on this test set, not about a fresh seed (the seed-paired table says that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from .analysis import bootstrap_ci
from .metrics import per_user_metrics
from .mojito_table import paired_t_test

__all__ = ["paired_users"]

METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
COLUMNS = ["label", "metric", "seeds", "users", "mean_diff", "ci_low", "ci_high", "t", "p", "ahead", "behind", "tied"]


def _per_user(ranks: Mapping[int, Tensor], seeds: Sequence[int], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """metric → [N] its value for every user, averaged over ``seeds`` (``per_user_metrics`` once per seed)."""
    ks = tuple(sorted({int(m.split("@")[1]) for m in metrics if "@" in m})) or (10,)
    per_seed = [per_user_metrics(ranks[s], ks) for s in seeds]
    return {m: np.mean([values[m].numpy() for values in per_seed], axis=0) for m in metrics}


def paired_users(ranks: Mapping[str, Mapping[int, Tensor]], reference: str, metrics: Sequence[str] = METRICS,
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """``reference`` minus every other label, user by user.

    ``ranks[label][training seed]``: [N] full-ranking test ranks of the same N users in the same order. One row
    per (other label, metric): ``seeds`` (those both labels have), ``users``, ``mean_diff`` (> 0: the reference
    is ahead) with its bootstrap interval ``ci_low``/``ci_high``, the paired t-test's ``t`` and two-sided ``p``
    over users, and the users on which the reference is ``ahead``, ``behind`` or ``tied``.
    """
    if reference not in ranks:
        raise ValueError(f"reference {reference!r} has no ranks; labels: {sorted(ranks)}")
    sizes = {len(r) for by_seed in ranks.values() for r in by_seed.values()}
    if len(sizes) != 1:
        raise ValueError(f"every model must rank the same users; got rank vectors of lengths {sorted(sizes)}")
    rows = []
    for label, other in ranks.items():
        if label == reference:
            continue
        seeds = sorted(set(ranks[reference]) & set(other))
        if not seeds:
            raise ValueError(f"{label!r} and {reference!r} share no training seed ({sorted(other)} vs "
                             f"{sorted(ranks[reference])})")
        ours, theirs = _per_user(ranks[reference], seeds, metrics), _per_user(other, seeds, metrics)
        for metric in metrics:
            diff = ours[metric] - theirs[metric]
            mean, lo, hi = bootstrap_ci(diff, n_boot, seed, level)
            t, p = paired_t_test(diff)                                      # all equal: NaN (std is rounding)
            rows.append({"label": label, "metric": metric, "seeds": ",".join(map(str, seeds)), "users": len(diff),
                         "mean_diff": mean, "ci_low": lo, "ci_high": hi, "t": t, "p": p,
                         "ahead": int((diff > 0).sum()), "behind": int((diff < 0).sum()),
                         "tied": int((diff == 0).sum())})
    return pd.DataFrame(rows, columns=COLUMNS)
