"""Negative sampling: validity (never the target, an excluded item or 0), reproducibility, uniformity."""

from __future__ import annotations

import pytest
import torch

from seqrec_lib.sampling import eval_negatives_from_uniforms, sample_eval_negatives, sample_negatives


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def padded_targets(B: int, L: int, n_items: int, seed: int = 0) -> torch.Tensor:
    g = gen(seed)
    targets = torch.randint(1, n_items + 1, (B, L), generator=g)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    return targets.masked_fill(torch.arange(L)[None, :] < (L - lengths)[:, None], 0)


def random_mask(B: int, n_items: int, p: float, seed: int = 0) -> torch.Tensor:
    mask = torch.rand(B, n_items + 1, generator=gen(seed)) < p
    mask[:, 0] = True
    return mask


def test_sample_negatives_valid_and_zero_at_padding():
    n_items, k = 12, 3
    targets = padded_targets(20, 7, n_items)
    exclude = random_mask(20, n_items, 0.5)
    exclude.scatter_(1, targets[:, -1:], False)  # keep at least the last target allowed
    exclude[:, 1] = False                         # and item 1, so no position is infeasible
    neg = sample_negatives(targets, n_items, k, exclude=exclude, generator=gen())
    assert neg.shape == (20, 7, 3) and neg.dtype == torch.long
    pad = targets == 0
    assert (neg[pad] == 0).all()
    real = neg[~pad]
    assert ((real >= 1) & (real <= n_items)).all()
    assert (neg != targets[..., None])[~pad].all()
    for b in range(20):
        for item in neg[b][~pad[b]].flatten().tolist():
            assert not exclude[b, item]


def test_sample_negatives_without_exclude_never_hits_the_target():
    targets = padded_targets(30, 5, 2, seed=1)  # two items: the negative must be the other one
    neg = sample_negatives(targets, 2, 4, generator=gen())
    real = targets != 0
    assert torch.equal(neg[real], (3 - targets[real])[:, None].expand(-1, 4))


def test_sample_negatives_is_reproducible():
    targets = padded_targets(8, 6, 50)
    a = sample_negatives(targets, 50, 2, generator=gen(7))
    b = sample_negatives(targets, 50, 2, generator=gen(7))
    c = sample_negatives(targets, 50, 2, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_negatives_is_uniform_over_allowed_items():
    n_items, draws = 10, 20_000
    targets = torch.full((1, draws), 3)
    exclude = torch.zeros(1, n_items + 1, dtype=torch.bool)
    exclude[0, [5, 6]] = True
    neg = sample_negatives(targets, n_items, exclude=exclude, generator=gen()).flatten()
    counts = torch.bincount(neg, minlength=n_items + 1).double()
    allowed = [1, 2, 4, 7, 8, 9, 10]
    assert counts[[0, 3, 5, 6]].sum() == 0
    expected = draws / len(allowed)
    sd = (expected * (1 - 1 / len(allowed))) ** 0.5
    assert ((counts[allowed] - expected).abs() < 6 * sd).all()


def test_sample_negatives_errors():
    targets = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="no allowed negative"):
        sample_negatives(torch.tensor([[0, 1]]), 1)  # target 1 is the only item
    exclude = torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="no allowed negative"):
        sample_negatives(targets, 3, exclude=exclude)
    with pytest.raises(ValueError, match="targets"):
        sample_negatives(torch.tensor([[4]]), 3)
    with pytest.raises(ValueError, match="k must"):
        sample_negatives(targets, 3, k=0)
    with pytest.raises(ValueError, match="exclude"):
        sample_negatives(targets, 3, exclude=torch.zeros(1, 3, dtype=torch.bool))
    # One allowed item out of 1000 and one round: the rounds run out with a clear message.
    exclude = torch.ones(1, 1001, dtype=torch.bool)
    exclude[0, 500] = False
    with pytest.raises(RuntimeError, match="max_rounds"):
        sample_negatives(torch.full((1, 50), 7), 1000, exclude=exclude, generator=gen(), max_rounds=1)


@pytest.mark.parametrize("unique", [False, True])
def test_eval_negatives_valid(unique):
    n_items, B, n = 40, 25, 15
    history = random_mask(B, n_items, 0.3)
    targets = torch.randint(1, n_items + 1, (B,), generator=gen(1))
    neg = sample_eval_negatives(history, targets, n_items, n, generator=gen(2), unique=unique)
    assert neg.shape == (B, n) and neg.dtype == torch.long
    assert ((neg >= 1) & (neg <= n_items)).all()
    assert (neg != targets[:, None]).all()
    assert not history.gather(1, neg).any()
    if unique:
        assert all(len(set(row)) == n for row in neg.tolist())


def test_eval_negatives_repeat_by_default_and_unique_takes_everything_when_tight():
    history = torch.zeros(2, 6, dtype=torch.bool)
    history[:, [0, 1]] = True
    targets = torch.tensor([2, 5])  # allowed: {3, 4, 5} and {2, 3, 4}
    neg = sample_eval_negatives(history, targets, 5, 3, generator=gen(), unique=True)
    assert [sorted(r) for r in neg.tolist()] == [[3, 4, 5], [2, 3, 4]]
    many = sample_eval_negatives(history, targets, 5, 50, generator=gen())
    assert set(many[0].tolist()) == {3, 4, 5}  # 50 independent draws over 3 items repeat
    with pytest.raises(ValueError, match="unique"):
        sample_eval_negatives(history, targets, 5, 4, generator=gen(), unique=True)


def test_eval_negatives_reproducible_and_row_independent():
    n_items, B = 30, 12
    history = random_mask(B, n_items, 0.3)
    targets = torch.randint(1, n_items + 1, (B,), generator=gen(1))
    a = sample_eval_negatives(history, targets, n_items, 20, generator=gen(3))
    assert torch.equal(a, sample_eval_negatives(history, targets, n_items, 20, generator=gen(3)))
    assert not torch.equal(a, sample_eval_negatives(history, targets, n_items, 20, generator=gen(4)))
    u = torch.rand(B, 8, dtype=torch.float64, generator=gen(5))
    for unique in (False, True):
        whole = eval_negatives_from_uniforms(history, targets, n_items, u, unique)
        parts = torch.cat([eval_negatives_from_uniforms(history[s], targets[s], n_items, u[s], unique)
                           for s in (slice(0, 5), slice(5, B))])
        assert torch.equal(whole, parts)


@pytest.mark.parametrize("unique", [False, True])
def test_eval_negatives_uniform_over_allowed_items(unique):
    n_items, B, n = 12, 4000, 4
    history = torch.zeros(B, n_items + 1, dtype=torch.bool)
    history[:, [2, 9]] = True
    targets = torch.full((B,), 5)
    neg = sample_eval_negatives(history, targets, n_items, n, generator=gen(), unique=unique)
    counts = torch.bincount(neg.flatten(), minlength=n_items + 1).double()
    allowed = [i for i in range(1, n_items + 1) if i not in (2, 5, 9)]
    assert counts[[0, 2, 5, 9]].sum() == 0
    p = 1 / len(allowed)  # per draw; with unique, each row holds n distinct items, each with prob n * p
    expected = B * n * p
    sd = (B * n * p * (1 - p)) ** 0.5
    assert ((counts[allowed] - expected).abs() < 6 * sd).all()


def test_eval_negatives_errors():
    history = torch.zeros(2, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match="history"):
        sample_eval_negatives(history[:, :5], torch.tensor([1, 2]), 5, 3, generator=gen())
    with pytest.raises(ValueError, match="targets"):
        sample_eval_negatives(history, torch.tensor([0, 2]), 5, 3, generator=gen())
    with pytest.raises(ValueError, match="n must"):
        sample_eval_negatives(history, torch.tensor([1, 2]), 5, 0, generator=gen())
    full = torch.ones(2, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match="allowed negatives"):
        sample_eval_negatives(full, torch.tensor([1, 2]), 5, 3, generator=gen())
