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
from tests.helpers import load_script


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
    t = diffs.mean() / (0.01 / math.sqrt(3))
    assert row["t"] == pytest.approx(t) and row["p"] == pytest.approx(mt.t_two_sided_p(t, 2))
    one = paired.loc[("ml-100k", "MOJITO (w/o long-term)", "full", "HR@10")]
    assert one["pairs"] == 1 and np.isnan(one["p"]) and np.isnan(one["std_diff"])
    assert len(paired) == 2 * 2 * 2


@pytest.mark.parametrize(("t", "df", "p"), [(12.706, 1, 0.05), (4.303, 2, 0.05), (3.182, 3, 0.05),
                                           (2.776, 4, 0.05), (2.571, 5, 0.05), (9.925, 2, 0.01), (0.0, 3, 1.0),
                                           (-2.776, 4, 0.05)])
def test_t_p_values_match_the_tables(t, df, p):
    assert mt.t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


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
    paper_runs = load_script("paper_runs")
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
