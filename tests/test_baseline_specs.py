"""The baselines in the experiments (docs/baselines.md §5): Table 2's rule, the MOJITO table's rows, single runs
by name, the profiles' settings, and a smoke run of the Table-2 baselines with their records."""

import dataclasses

import pytest

from seqrec_lib import experiments as ex
from seqrec_lib.profiles import Profile, get_profile

SMOKE, PAPER = get_profile("smoke"), get_profile("paper")


def test_table2_baselines_follow_one_rule_with_one_seed():
    specs = ex.baseline_specs(PAPER, "beauty")
    assert [s.label for s in specs] == ["GRU4Rec", "BERT4Rec", "CL4SRec", "ICLRec", "DuoRec", "CORE"]
    assert all(s.seed == PAPER.seeds[0] and [p.mode for p in s.protocols] == ["full"] for s in specs)
    assert all(s.samples_step is None for s in specs)
    for spec in specs[2:]:                                        # the SASRec-backbone family: one setting
        assert (spec.model_config.d, spec.model_config.hidden_dropout) == (PAPER.d, PAPER.dropout)
        assert spec.train_config == specs[0].train_config
    every_seed = ex.baseline_specs(PAPER, "beauty", PAPER.seeds)
    assert every_seed[:len(specs)] == specs and [s.seed for s in every_seed] == [
        seed for seed in PAPER.seeds for _ in specs]
    gru, bert, cl = (s.model_config for s in specs[:3])
    assert gru.d == bert.d == cl.d == PAPER.d and gru.max_len == bert.max_len == cl.max_len == PAPER.max_len
    assert gru.dropout == 0.3                                     # GRU4Rec keeps its own dropout and width
    assert bert.attn_dropout == bert.hidden_dropout == cl.hidden_dropout == PAPER.dropout
    assert bert.n_heads == cl.n_heads == PAPER.single_heads
    assert specs[0].train_config == dataclasses.replace(PAPER.train, seed=PAPER.seeds[0], device=PAPER.device)
    assert (specs[1].train_config.epochs, specs[1].train_config.patience) == (2000, 200)   # Petrov & Macdonald
    assert specs[1].train_config.batch_size == PAPER.train.batch_size


def test_mojito_table_rows_include_the_time_baselines():
    rows = ex.time_specs(PAPER, "ml-100k", ablations=False)
    by_label = {s.label: s for s in rows if s.seed == PAPER.seeds[0]}
    assert {"TiSASRec", "GRU4Rec", "BERT4Rec"} <= set(by_label)
    ti, bert = by_label["TiSASRec"], by_label["BERT4Rec"]
    assert ti.model_config.loss == "bce" and ti.samples_step == PAPER.mojito_samples_step
    assert ti.train_config == by_label["MOJITO"].train_config
    assert [p.mode for p in bert.protocols] == ["sampled", "full"]
    assert (bert.train_config.epochs, bert.train_config.patience) == (2000, 200)


def test_single_runs_by_name_and_their_default_datasets():
    for model, label in (("gru4rec", "GRU4Rec"), ("bert4rec", "BERT4Rec"), ("cl4srec", "CL4SRec")):
        spec = ex.single_run_spec(SMOKE, model, ex.default_dataset(SMOKE, model), epochs=1)
        assert spec.label == label and spec.train_config.epochs == 1 and spec.samples_step is None
    ti = ex.single_run_spec(PAPER, "tisasrec", ex.default_dataset(PAPER, "tisasrec"))
    assert ti.dataset == "ml-100k" and ti.samples_step == PAPER.mojito_samples_step and ti.label == "TiSASRec"
    assert ex.default_dataset(PAPER, "bert4rec") == "beauty" and ex.default_dataset(PAPER, "mojito") == "ml-100k"
    with pytest.raises(ValueError, match="model must be one of"):
        ex.single_run_spec(SMOKE, "gru5rec", "synthetic")


def test_profiles_check_their_baselines():
    with pytest.raises(ValueError, match="registered models"):
        dataclasses.replace(SMOKE, baselines=("gru5rec",))
    with pytest.raises(ValueError, match="train_overrides"):
        dataclasses.replace(SMOKE, train_overrides={"bert4rec": {"epochz": 3}})
    assert isinstance(SMOKE, Profile) and SMOKE.train_for("gru4rec", SMOKE.train) == SMOKE.train
    assert PAPER.train_for("bert4rec", PAPER.train).patience == 200


def test_smoke_baselines_train_and_report_seconds_per_epoch(tmp_path):
    records = ex.run_many(ex.baseline_specs(SMOKE, "synthetic"), SMOKE, tmp_path)
    frame = ex.results_frame(records)
    assert list(frame["label"]) == ["GRU4Rec", "BERT4Rec", "CL4SRec"]
    assert (frame["seconds_per_epoch"] > 0).all() and (frame["test_full_NDCG@20"].between(0, 1)).all()
    table = ex.summary_table(frame, ["NDCG@20"])
    assert list(table.index.get_level_values("label")) == ["GRU4Rec", "BERT4Rec", "CL4SRec"]
