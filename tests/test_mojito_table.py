"""The MOJITO table (issue 16): ``seqrec_lib.mojito_table`` on hand-made records (means, seed and cohort spreads
kept apart, paired comparison, exact t p-values), on smoke records, and the ``ml100k-mojito`` plan's order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seqrec_lib import experiments as ex
from seqrec_lib import mojito_table as mt
from seqrec_lib.profiles import get_profile


def _frame() -> pd.DataFrame:
    """MOJITO ahead of SASRec-BCE by 0.01, 0.02, 0.03 (sampled NDCG@10) on seeds 1-3; one ablation seed."""
    rows = []
    for label, base in (("MOJITO", 0.40), ("SASRec-BCE", 0.39), ("MOJITO (w/o long-term)", 0.30)):
        for seed in ((1, 2, 3) if label != "MOJITO (w/o long-term)" else (1,)):
            bump = 0.0 if label == "SASRec-BCE" else 0.01 * (seed - 1)
            row = {"label": label, "dataset": "ml-100k", "seed": seed, "run_id": f"{label}-{seed}"}
            for protocol, scale in (("sampled", 1.0), ("full", 0.25)):
                for metric, factor in (("NDCG@10", 1.0), ("HR@10", 1.6)):
                    row[f"test_{protocol}_{metric}"] = (base + bump) * scale * factor
            row["test_sampled_NDCG@10_std"] = row["test_sampled_HR@10_std"] = 0.002 * seed
            rows.append(row)
    return pd.DataFrame(rows)


def test_table_means_seed_spread_and_cohort_spread_apart():
    table = mt.mojito_table(_frame())
    assert list(table.index) == [("ml-100k", "MOJITO"), ("ml-100k", "SASRec-BCE"), ("ml-100k", "MOJITO (w/o long-term)")]
    mojito = table.loc[("ml-100k", "MOJITO")]
    assert mojito["seeds"] == 3
    assert mojito["sampled NDCG@10"] == pytest.approx(0.41)
    assert mojito["sampled NDCG@10 std"] == pytest.approx(0.01)                 # over seeds
    assert mojito["sampled NDCG@10 cohort std"] == pytest.approx(0.004)        # mean of the cohort stds
    assert mojito["full HR@10"] == pytest.approx(0.41 * 0.25 * 1.6)
    assert "full NDCG@10 cohort std" not in table
    assert np.isnan(table.loc[("ml-100k", "MOJITO (w/o long-term)"), "sampled NDCG@10 std"])
    text = mt.format_mojito_table(table)
    assert text.loc[("ml-100k", "MOJITO"), "sampled NDCG@10"] == "0.4100 ± 0.0100"
    assert text.loc[("ml-100k", "MOJITO"), "sampled NDCG@10 (cohorts ±)"] == "± 0.0040"
    assert text.loc[("ml-100k", "MOJITO (w/o long-term)"), "full NDCG@10"] == "0.0750"
    with pytest.raises(KeyError, match="test_full_NOPE"):
        mt.mojito_table(_frame(), metrics=["NOPE"])


def test_paired_comparison_over_seeds():
    paired = mt.paired_comparison(_frame(), "MOJITO")
    row = paired.loc[("ml-100k", "SASRec-BCE", "sampled", "NDCG@10")]
    diffs = np.array([0.01, 0.02, 0.03])
    assert row["pairs"] == 3 and row["ahead"] == 3
    assert row["mean_diff"] == pytest.approx(diffs.mean()) and row["std_diff"] == pytest.approx(0.01)
    t = diffs.mean() / (0.01 / math.sqrt(3))                                   # 2√3
    assert row["t"] == pytest.approx(t) and row["p"] == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)
    one = paired.loc[("ml-100k", "MOJITO (w/o long-term)", "full", "HR@10")]
    assert one["pairs"] == 1 and np.isnan(one["p"]) and np.isnan(one["t"]) and np.isnan(one["std_diff"])
    assert len(paired) == 2 * 2 * 2


def _with_t(t: float, n: int) -> np.ndarray:
    """n differences whose paired t statistic is ``t`` (up to rounding): unit-sd spread around t / √n."""
    base = np.linspace(-1.0, 1.0, n) ** 3
    base = (base - base.mean()) / base.std(ddof=1)
    return base + t / math.sqrt(n)


def test_paired_t_test_on_a_hand_made_sample():
    before = np.array([12.1, 14.3, 11.0, 13.8, 12.9, 15.2])
    after = np.array([12.9, 14.1, 12.2, 14.9, 13.0, 16.4])
    d = after - before                                                        # 0.8, -0.2, 1.2, 1.1, 0.1, 1.2
    mean = d.sum() / 6
    sd = math.sqrt(((d - mean) ** 2).sum() / 5)
    t, p = mt.paired_t_test(d)
    assert t == pytest.approx(mean / (sd / math.sqrt(6)), rel=1e-12)           # textbook: d̄ / (s_d / √n)
    assert t == pytest.approx(2.8265049858, rel=1e-9)
    assert p == pytest.approx(0.0368257310328, rel=1e-9)                       # 2 P(T_5 > t), mpmath
    assert mt.paired_t_test(-d) == pytest.approx((-t, p), rel=1e-12)           # two-sided: symmetric
    assert mt.paired_t_test([-1.0, 1.0, -2.0, 2.0]) == (0.0, 1.0)               # no mean difference: p = 1


@pytest.mark.parametrize(("t", "df", "p"), [
    (2.0, 10, 0.07338803477074037),                   # two-sided p of t = 2 on 10 df
    (12.706204736, 1, 0.05), (4.302652730, 2, 0.05), (3.182446305, 3, 0.05), (2.776445105, 4, 0.05),
    (2.570581836, 5, 0.05), (9.924843201, 2, 0.01), (-2.776445105, 4, 0.05),   # textbook critical values
    (8.596620798782345, 35597, 8.53912828844648e-18),  # a published per-user row (Sports; mpmath, 50 digits)
    (8.96199024080618, 19999, 3.4626382233415645e-19),  # test_paired_users' tiny p (mpmath, 50 digits)
])
def test_paired_t_test_p_values_against_known_values(t, df, p):
    got_t, got_p = mt.paired_t_test(_with_t(t, df + 1))
    assert got_t == pytest.approx(t, rel=1e-12)
    assert got_p == pytest.approx(p, rel=1e-8, abs=0)        # abs=0: approx would accept any p < 1e-12


@pytest.mark.parametrize("t", [0.5, 3.0, 7.0])
@pytest.mark.parametrize("df", [1, 2, 7, 40, 3001])
def test_paired_t_test_p_values_against_mpmath(t, df):
    """P(|T| ≥ t) = I_{df/(df+t²)}(df/2, 1/2), the regularized incomplete beta, in 50-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    got_t, got_p = mt.paired_t_test(_with_t(t, df + 1))
    with mpmath.workdps(50):
        x = mpmath.mpf(df) / (df + mpmath.mpf(got_t) ** 2)
        expected = float(mpmath.betainc(mpmath.mpf(df) / 2, mpmath.mpf(1) / 2, 0, x, regularized=True))
    assert got_p == pytest.approx(expected, rel=1e-10, abs=0)
    if df == 1:                                                               # Cauchy: 1 − (2/π) atan |t|
        assert got_p == pytest.approx(1 - 2 / math.pi * math.atan(got_t), rel=1e-10)
    if df == 2:                                                               # 1 − t / √(t² + 2)
        assert got_p == pytest.approx(1 - got_t / math.sqrt(got_t ** 2 + 2), rel=1e-10)


def test_paired_t_test_without_a_test():
    assert all(math.isnan(x) for x in mt.paired_t_test([0.3]))                # one pair
    assert all(math.isnan(x) for x in mt.paired_t_test([0.1] * 5))           # no spread (std is rounding)
    assert all(math.isnan(x) for x in mt.paired_t_test([0.1, float("nan"), 0.2]))
    assert all(math.isnan(x) for x in mt.paired_t_test([]))
    with pytest.raises(ValueError, match="1-D"):
        mt.paired_t_test(np.zeros((3, 2)))


def test_on_smoke_records(tmp_path):
    smoke = get_profile("smoke")
    specs = [s for s in ex.time_specs(smoke, "synthetic", ablations=True) if s.label in ("MOJITO", "SASRec-BCE")
             or s.label == "MOJITO (w/o long-term)"]
    frame = ex.results_frame(ex.run_many(specs, smoke, tmp_path))
    table = mt.mojito_table(frame)
    assert list(table.index.get_level_values("label")) == ["MOJITO", "SASRec-BCE", "MOJITO (w/o long-term)"]
    means = table[[c for c in table.columns if c != "seeds" and not c.endswith(" std")]].to_numpy(dtype=float)
    assert ((means >= 0) & (means <= 1)).all() and table["seeds"].tolist() == [1, 1, 1]
    assert table.filter(like="cohort std").notna().all().all()
    paired = mt.paired_comparison(frame)
    assert set(paired.index.get_level_values("label")) == {"SASRec-BCE", "MOJITO (w/o long-term)"}


def test_the_ml100k_plan_runs_the_core_rows_first_then_the_ablations_then_the_other_baselines():
    from seqrec_lib import plans as paper_runs
    profile = get_profile("paper")
    plan = paper_runs.PLANS["ml100k-mojito"](profile)
    models = [s.label for s in ex.time_model_specs(profile, "ml-100k", 1)]
    core = [m for m in models if m in paper_runs.ML100K_CORE]
    assert core[:3] == ["MOJITO", "SASRec-BCE", "SASRec-CE"]
    ablations = [f"MOJITO ({name})" for name in ex.MOJITO_ABLATIONS]
    others = [m for m in models if m not in core]
    assert others and [(s.label, s.seed) for s in plan] == (
        [(label, seed) for seed in (1, 2, 3) for label in core]
        + [(label, seed) for seed in (1, 2, 3) for label in ablations]
        + [(label, seed) for seed in (1, 2, 3) for label in others])
    assert {s.dataset for s in plan} == {"ml-100k"} and {s.samples_step for s in plan} == {10}
    assert all([p.mode for p in s.protocols] == ["sampled", "full"] for s in plan)
