"""Ranks and ranking metrics against hand-made values and naive per-user references."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec_lib.metrics import HISTORY_MASKS, full_ranks, per_user_metrics, ranking_metrics, sampled_ranks


def naive_full_rank(scores: list[float], target: int, history: set[int], mode: str) -> int:
    """Count items 1..V other than the target that beat it after masking, one item at a time."""
    rank = 0
    for item in range(1, len(scores)):
        if item == target:
            continue
        value = scores[item]
        if item in history and mode == "-inf":
            continue
        if item in history and mode == "0":
            value = 0.0
        rank += value > scores[target]
    return rank


def random_case(seed: int, B: int = 64, V: int = 25):
    """Integer-valued scores in -3..3 (many ties, some with 0), random targets and history with padding."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(-3, 4, (B, V + 1), generator=g).float()
    targets = torch.randint(1, V + 1, (B,), generator=g)
    history = torch.rand(B, V + 1, generator=g) < 0.4
    history[:, 0] = torch.rand(B, generator=g) < 0.5  # the padding column must not matter
    return scores, targets, history


@pytest.mark.parametrize("mode", HISTORY_MASKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_ranks_match_naive_reference(mode, seed):
    scores, targets, history = random_case(seed)
    ranks = full_ranks(scores, targets, history, mode)
    assert ranks.dtype == torch.long and ranks.shape == targets.shape
    for b in range(len(targets)):
        hist = {i for i in range(1, scores.shape[1]) if history[b, i]}
        expected = naive_full_rank(scores[b].tolist(), int(targets[b]), hist, mode)
        assert int(ranks[b]) == expected, (mode, b)


def test_modes_differ_on_the_same_case():
    scores, targets, history = random_case(0)
    results = [full_ranks(scores, targets, history, m) for m in HISTORY_MASKS]
    assert not torch.equal(results[0], results[1]) and not torch.equal(results[0], results[2])


def test_no_history_equals_mode_none():
    scores, targets, history = random_case(3)
    assert torch.equal(full_ranks(scores, targets, None, "-inf"), full_ranks(scores, targets, history, "none"))


def test_ties_count_for_the_target_and_padding_is_never_a_candidate():
    #                     pad   1    2    3    4    5
    scores = torch.tensor([[9.0, 1.0, 1.0, 1.0, 0.5, 2.0]])
    target = torch.tensor([2])
    assert int(full_ranks(scores, target, None, "none")) == 1  # only item 5; ties with 1, 3 and pad 0 don't count
    history = torch.tensor([[False, False, False, False, False, True]])
    assert int(full_ranks(scores, target, history, "-inf")) == 0  # item 5 excluded
    assert int(full_ranks(scores, target, history, "0")) == 0     # item 5 scored 0 < 1


def test_target_in_history_keeps_its_own_score():
    scores = torch.tensor([[0.0, -1.0, -2.0, 3.0]])
    target = torch.tensor([1])
    history = torch.tensor([[False, True, True, False]])  # the target itself was seen before
    assert int(full_ranks(scores, target, history, "-inf")) == 1  # only item 3
    # Item 2 is set to 0 > -1; the target is read before masking, so it stays at -1, not 0.
    assert int(full_ranks(scores, target, history, "0")) == 2


def test_full_ranks_does_not_modify_scores():
    scores, targets, history = random_case(4)
    before = scores.clone()
    full_ranks(scores, targets, history, "0")
    assert torch.equal(scores, before)


def test_full_ranks_rejects_bad_input():
    scores, targets, history = random_case(0, B=4, V=5)
    with pytest.raises(ValueError, match="history_mask"):
        full_ranks(scores, targets, history, "zero")
    with pytest.raises(ValueError, match="targets"):
        full_ranks(scores, torch.zeros(4, dtype=torch.long), history)
    with pytest.raises(ValueError, match="targets"):
        full_ranks(scores, targets[:3], history)
    with pytest.raises(ValueError, match="history"):
        full_ranks(scores, targets, history[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        full_ranks(scores.index_fill(1, torch.tensor([2]), float("nan")), targets, history)


def test_sampled_ranks_against_naive_reference():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (50, 11), generator=g).float()
    ranks = sampled_ranks(scores)
    for b in range(len(scores)):
        row = scores[b].tolist()
        assert int(ranks[b]) == sum(s > row[0] for s in row[1:])
    assert sampled_ranks(torch.tensor([[1.0, 1.0, 0.0, 2.0]])).tolist() == [1]
    with pytest.raises(ValueError, match="candidate_scores"):
        sampled_ranks(torch.zeros(3))


def test_ranking_metrics_exact_values():
    ranks = torch.tensor([0, 1, 4, 9, 25])
    m = ranking_metrics(ranks, ks=(1, 5, 10))
    assert list(m) == ["HR@1", "HR@5", "HR@10", "NDCG@1", "NDCG@5", "NDCG@10", "MRR"]
    assert m["HR@1"] == pytest.approx(1 / 5)
    assert m["HR@5"] == pytest.approx(3 / 5)
    assert m["HR@10"] == pytest.approx(4 / 5)
    assert m["NDCG@1"] == pytest.approx(1 / 5)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 5)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 26) / 5)


def test_per_user_metrics_exact_values():
    per_user = per_user_metrics(torch.tensor([0, 4, 25]), ks=(5,))
    assert per_user["HR@5"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["NDCG@5"].tolist() == pytest.approx([1.0, 1 / math.log2(6), 0.0])
    assert per_user["MRR"].tolist() == pytest.approx([1.0, 1 / 5, 1 / 26])


def test_ranking_metrics_default_keys_and_bad_input():
    assert set(ranking_metrics(torch.tensor([3]))) == {"HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10",
                                                        "NDCG@20", "MRR"}
    with pytest.raises(ValueError, match="ranks"):
        ranking_metrics(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="ranks"):
        ranking_metrics(torch.tensor([-1]))
    with pytest.raises(ValueError, match="ks"):
        ranking_metrics(torch.tensor([1]), ks=(0,))
