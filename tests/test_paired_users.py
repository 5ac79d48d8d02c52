import math

import numpy as np
import pytest
import torch

from seqrec_lib.paired_users import paired_users


def ndcg10(rank: int) -> float:
    return 1 / math.log2(rank + 2) if rank < 10 else 0.0


def test_paired_users_against_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    n = 300
    ranks = {"FAME": {s: torch.randint(0, 40, (n,), generator=gen) for s in (1, 2, 3)},
             "SASRec-CE": {s: torch.randint(0, 40, (n,), generator=gen) for s in (1, 2, 3)},
             "FAME w/o MoE": {s: torch.randint(0, 40, (n,), generator=gen) for s in (2, 3, 4)}}
    table = paired_users(ranks, "FAME", metrics=("NDCG@10", "HR@10"), n_boot=200).set_index(["label", "metric"])
    assert list(table.index) == [("SASRec-CE", "NDCG@10"), ("SASRec-CE", "HR@10"), ("FAME w/o MoE", "NDCG@10"),
                                 ("FAME w/o MoE", "HR@10")]
    for label, seeds in (("SASRec-CE", (1, 2, 3)), ("FAME w/o MoE", (2, 3))):
        diff = np.array([np.mean([ndcg10(int(ranks["FAME"][s][u])) - ndcg10(int(ranks[label][s][u]))
                                  for s in seeds]) for u in range(n)])
        row = table.loc[(label, "NDCG@10")]
        assert row.seeds == ",".join(map(str, seeds)) and row.users == n
        assert row.mean_diff == pytest.approx(diff.mean(), abs=1e-12)
        assert row.t == pytest.approx(diff.mean() / (diff.std(ddof=1) / math.sqrt(n)))
        assert 0 < row.p < 1 and row.ci_low <= row.mean_diff <= row.ci_high
        assert (row.ahead, row.behind, row.tied) == ((diff > 0).sum(), (diff < 0).sum(), (diff == 0).sum())
        hits = np.array([np.mean([(int(ranks["FAME"][s][u]) < 10) - (int(ranks[label][s][u]) < 10) for s in seeds])
                         for u in range(n)])
        assert table.loc[(label, "HR@10")].mean_diff == pytest.approx(hits.mean(), abs=1e-12)


def test_a_clear_difference_is_significant_and_none_is_not():
    n = 2000
    better = {1: torch.where(torch.arange(n) % 10 == 0, 20, 0)}         # first for 90 % of users, missed for 10 %
    worse = {1: torch.full((n,), 3)}
    table = paired_users({"A": better, "B": worse}, "A", metrics=("NDCG@10",), n_boot=100)
    assert table.mean_diff.iloc[0] == pytest.approx(0.9 - 1 / math.log2(5))
    assert table.p.iloc[0] < 1e-12 and (table.ahead.iloc[0], table.behind.iloc[0]) == (1800, 200)
    constant = paired_users({"A": {1: torch.zeros(n, dtype=torch.long)}, "B": worse}, "A", metrics=("NDCG@10",))
    assert math.isnan(constant.t.iloc[0]) and math.isnan(constant.p.iloc[0])   # no spread: no test
    same = paired_users({"A": better, "B": better}, "A", metrics=("NDCG@10",), n_boot=100)
    assert same.mean_diff.iloc[0] == 0 and same.tied.iloc[0] == n


def test_paired_users_rejects_bad_input():
    one = {1: torch.zeros(5, dtype=torch.long)}
    with pytest.raises(ValueError, match="reference 'C'"):
        paired_users({"A": one, "B": one}, "C")
    with pytest.raises(ValueError, match="same users"):
        paired_users({"A": one, "B": {1: torch.zeros(6, dtype=torch.long)}}, "A")
    with pytest.raises(ValueError, match="share no training seed"):
        paired_users({"A": one, "B": {2: torch.zeros(5, dtype=torch.long)}}, "A")


def test_a_tiny_p_value_is_exact():
    """HR@10 per user is +1 (reference hits, the other misses), −1 or 0: with 1200 ahead and 800 behind out of
    20000 users the textbook t is 8.962 and its two-sided p 3.4626e-19 (mpmath, 50 digits), far below what
    1 − P(|T| < t) can resolve in double precision."""
    n, ahead, behind = 20000, 1200, 800
    ours = torch.full((n,), 50)
    theirs = torch.full((n,), 50)
    ours[:ahead] = 0
    theirs[ahead:ahead + behind] = 0
    table = paired_users({"A": {1: ours}, "B": {1: theirs}}, "A", metrics=("HR@10",), n_boot=100)
    row = table.iloc[0]
    mean = (ahead - behind) / n
    sd = math.sqrt((ahead + behind - n * mean ** 2) / (n - 1))
    assert row.t == pytest.approx(mean / (sd / math.sqrt(n)), rel=1e-12)
    assert row.t == pytest.approx(8.96199024080618, rel=1e-12)
    assert row.p == pytest.approx(3.4626382233415645e-19, rel=1e-8, abs=0)     # approx alone: abs=1e-12
    assert (row.ahead, row.behind, row.tied) == (ahead, behind, n - ahead - behind)
    assert row.ci_low < mean < row.ci_high
