import dataclasses

import pytest

from seqrec_lib.data.registry import DATASETS, get_spec
from seqrec_lib.data.synthetic import SyntheticConfig
from seqrec_lib.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_is_consistent(name):
    profile = get_profile(name)
    assert profile.name == name and profile.description
    for dataset in profile.datasets + (profile.case_study[0],):
        assert dataset in DATASETS
    for dataset in profile.time_datasets:
        assert get_spec(dataset).has_timestamps, f"{dataset} has no timestamps for MOJITO"
    for heads in profile.heads + (profile.case_study_heads, profile.single_heads):
        assert profile.d % heads == 0
    assert (2 * profile.d) % 2 == 0                     # MOJITO's 2 local heads split 2d
    assert profile.train.select_metric == "NDCG@20"      # docs/protocol.md §4: validation NDCG@20
    assert profile.mojito_train.select_metric == "NDCG@10"  # docs/protocol.md §4: sampled NDCG@10
    assert profile.seeds and len(set(profile.seeds)) == len(profile.seeds)


def test_demo_is_the_offline_default_and_smoke_is_tiny():
    demo, smoke = get_profile("demo"), get_profile("smoke")
    assert DEFAULT_PROFILE == "demo"
    assert demo.offline and set(demo.datasets) == {"synthetic"} and demo.synthetic is not None
    assert smoke.offline and smoke.synthetic == SyntheticConfig.smoke()
    assert smoke.heads == (1, 2) and smoke.experts == (2,) and smoke.seeds == (0,)
    assert smoke.train.epochs <= 2 and smoke.mojito_train.epochs <= 2
    assert len(demo.heads) >= 3 and len(demo.experts) >= 3


def test_paper_grids_are_the_papers():
    paper = get_profile("paper")
    assert paper.fame_datasets == ("beauty", "toys", "sports")    # the published figures' column order
    assert paper.heads == (1, 2, 4, 8, 16)            # Fig. 5
    assert paper.experts == (2, 4, 8, 16, 32)         # Fig. 6
    assert len(paper.seeds) == 3
    assert (paper.d, paper.max_len, paper.dropout) == (64, 50, 0.5)
    assert (paper.train.epochs, paper.train.patience, paper.train.batch_size, paper.train.lr) == (300, 40, 256, 1e-3)
    assert paper.case_studies == (("beauty", 230), ("sports", 230)) and paper.case_study_heads == 2
    assert not paper.train_missing and get_profile("demo").train_missing
    assert paper.time_datasets == ("ml-100k",) and not paper.offline
    # the MOJITO table's budget on ML-100K (issue 16): 7,029 windows, 55 steps per epoch, early stopping
    train = paper.mojito_train
    assert (train.batch_size, train.epochs, train.patience, train.lr) == (128, 200, 20, 1e-3)
    assert paper.mojito_samples_step == 10 and paper.mojito_ablations and paper.synthetic is None


def test_unknown_profile_lists_the_names():
    with pytest.raises(ValueError, match="smoke.*demo.*paper"):
        get_profile("nope")


def test_invalid_profiles_are_refused_with_the_parameter_named():
    smoke = get_profile("smoke")
    with pytest.raises(ValueError, match="divide d=16"):
        dataclasses.replace(smoke, heads=(1, 3))
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        dataclasses.replace(smoke, fame_datasets=("nope",))
    with pytest.raises(ValueError, match="synthetic must be a SyntheticConfig"):
        dataclasses.replace(smoke, synthetic=None)
    with pytest.raises(ValueError, match="seeds must be a non-empty tuple"):
        dataclasses.replace(smoke, seeds=())
    assert isinstance(smoke, Profile)


def test_fame_overrides_move_sasrec_ce_and_fame_but_not_the_baselines():
    """The search's choice (issue 12 step 1) applies to SASRec-CE and FAME, never to the Table-2 baselines."""
    from seqrec_lib.experiments import baseline_spec, fame_spec, sasrec_ce_spec

    smoke = get_profile("smoke")
    chosen = dataclasses.replace(smoke, fame_overrides={"lr": 5e-4, "batch_size": 512, "attn_dropout": 0.6,
                                                        "hidden_dropout": 0.6})
    for make in (lambda p: fame_spec(p, "synthetic", 2, 2, 1), lambda p: sasrec_ce_spec(p, "synthetic", 2, 1)):
        spec = make(chosen)
        assert (spec.train_config.lr, spec.train_config.batch_size) == (5e-4, 512)
        assert (spec.model_config.attn_dropout, spec.model_config.hidden_dropout) == (0.6, 0.6)
        assert spec.train_config.epochs == smoke.train.epochs                # the other fields stay the profile's
        assert make(smoke) != spec
    for model in ("gru4rec", "bert4rec", "cl4srec"):
        assert baseline_spec(chosen, model, "synthetic", 1) == baseline_spec(smoke, model, "synthetic", 1)
    with pytest.raises(ValueError, match=r"fame_overrides .* unknown: \['dropout'\]"):
        dataclasses.replace(smoke, fame_overrides={"dropout": 0.6})


def test_fame_subset_reads_the_notebooks_datasets_parameter():
    paper = get_profile("paper")
    assert paper.fame_subset("") == paper.fame_datasets
    assert paper.fame_subset("beauty") == ("beauty",)
    assert paper.fame_subset(" toys, beauty,toys ") == ("toys", "beauty")
    with pytest.raises(ValueError, match=r"datasets='ml-100k': \['ml-100k'\] not in profile 'paper'"):
        paper.fame_subset("ml-100k")
