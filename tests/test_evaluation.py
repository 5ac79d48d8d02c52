"""``evaluate`` against naive per-user computations, with a fake model that reads a fixed score table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.data.sequences import SequenceData, SplitData, build_splits
from seqrec_lib.evaluation import EvalProtocol, evaluate, user_ranks
from seqrec_lib.metrics import HISTORY_MASKS
from seqrec_lib.models.base import ModelOutput, SequentialModel
from tests.test_metrics import naive_full_rank

N_USERS, N_ITEMS = 23, 15


class TableModel(SequentialModel):
    """Scores = ``table[user]`` ([n_users + 1, n_items + 1]), plus ``noise`` * global-RNG uniforms.

    Records every scoring call as (users, candidates, training flag, grad enabled).
    """

    def __init__(self, table: torch.Tensor, noise: float = 0.0) -> None:
        super().__init__()
        self.n_items = table.shape[1] - 1
        self.register_buffer("table", table)
        self.noise = noise
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None, bool, bool]] = []

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        scores = self.table[batch.users]
        if self.noise:
            scores = scores + self.noise * torch.rand(scores.shape)
        return ModelOutput(states=scores[:, None, :])

    def score(self, out: ModelOutput, batch: Batch, candidates: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append((batch.users.clone(), None if candidates is None else candidates.clone(),
                           self.training, torch.is_grad_enabled()))
        scores = out.states[:, -1]
        return scores if candidates is None else scores.gather(1, candidates)

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.table.sum() * 0


def toy_data(seed: int = 0) -> SequenceData:
    """Random sequences of length 4..12 with repeats, so a held-out item can also be in the history."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 13, size=N_USERS)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(1, N_ITEMS + 1, size=int(offsets[-1])).astype(np.int64)
    return SequenceData("toy", N_USERS, N_ITEMS, offsets, items)


@pytest.fixture(scope="module")
def data() -> SequenceData:
    return toy_data()


@pytest.fixture(scope="module")
def split(data) -> SplitData:
    return build_splits(data, max_len=5)


@pytest.fixture()
def model() -> TableModel:
    """Integer-valued scores in -2..2: many ties, some at 0."""
    g = torch.Generator().manual_seed(1)
    return TableModel(torch.randint(-2, 3, (N_USERS + 1, N_ITEMS + 1), generator=g).float())


def held_out(data: SequenceData, user: int, which: str) -> tuple[int, set[int]]:
    """The held-out item and the history of ``user`` (docs/protocol.md §1), from the raw sequence."""
    seq = data.sequence(user).tolist()
    cut = -2 if which == "valid" else -1
    return seq[cut], set(seq[:cut])


def naive_metrics(ranks: list[int], ks=(5, 10, 20)) -> dict[str, float]:
    out = {f"HR@{k}": sum(r < k for r in ranks) / len(ranks) for k in ks}
    out.update({f"NDCG@{k}": sum(1 / math.log2(r + 2) for r in ranks if r < k) / len(ranks) for k in ks})
    out["MRR"] = sum(1 / (r + 1) for r in ranks) / len(ranks)
    return out


@pytest.mark.parametrize("which", ["valid", "test"])
@pytest.mark.parametrize("mask", HISTORY_MASKS)
def test_full_mode_matches_naive(data, split, model, which, mask):
    result = evaluate(model, split, which, EvalProtocol(history_mask=mask, batch_size=4))
    ranks = []
    for user in range(1, N_USERS + 1):
        target, hist = held_out(data, user, which)
        ranks.append(naive_full_rank(model.table[user].tolist(), target, hist, mask))
    expected = naive_metrics(ranks)
    assert result["n_users"] == N_USERS
    assert set(result) == set(expected) | {"n_users"}
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


@pytest.mark.parametrize("mask", HISTORY_MASKS)
def test_user_ranks_are_the_naive_ranks_evaluate_averages(data, split, model, mask):
    protocol = EvalProtocol(history_mask=mask, batch_size=3)
    ranks = user_ranks(model, split, "test", protocol)
    expected = [naive_full_rank(model.table[user].tolist(), *held_out(data, user, "test"), mask)
                for user in split.eval_set("test").users.tolist()]
    assert ranks.tolist() == expected
    with pytest.raises(ValueError, match="full-ranking protocol"):
        user_ranks(model, split, "test", EvalProtocol(mode="sampled"))


def test_some_held_out_item_is_in_its_history(data):
    """The toy data exercises the 'target read before masking' rule."""
    assert any(held_out(data, u, "test")[0] in held_out(data, u, "test")[1] for u in range(1, N_USERS + 1))


def sampled_calls_by_user(model: TableModel) -> dict[int, list[list[int]]]:
    out: dict[int, list[list[int]]] = {}
    for users, candidates, _, _ in model.calls:
        for user, row in zip(users.tolist(), candidates.tolist()):
            out.setdefault(user, []).append(row)
    return out


@pytest.mark.parametrize("unique", [False, True])
def test_sampled_mode_matches_naive_per_cohort(data, split, model, unique):
    protocol = EvalProtocol(mode="sampled", n_negatives=4, n_cohorts=3, cohort_size=10,
                            unique_negatives=unique, batch_size=1000)
    result = evaluate(model, split, "valid", protocol)
    assert len(model.calls) == 3  # one chunk per cohort
    cohort_metrics, cohorts = [], []
    for users, candidates, _, _ in model.calls:
        assert candidates.shape == (10, 5)
        assert len(set(users.tolist())) == 10  # every sampled user scored once
        cohorts.append(frozenset(users.tolist()))
        ranks = []
        for user, row in zip(users.tolist(), candidates.tolist()):
            target, hist = held_out(data, user, "valid")
            assert row[0] == target
            for neg in row[1:]:
                assert 1 <= neg <= N_ITEMS and neg != target and neg not in hist
            if unique:
                assert len(set(row[1:])) == 4
            scores = model.table[user]
            ranks.append(sum(float(scores[n]) > float(scores[target]) for n in row[1:]))
        cohort_metrics.append(naive_metrics(ranks))
    assert len(set(cohorts)) > 1  # cohorts are different user samples
    assert result["n_users"] == 10
    for key in cohort_metrics[0]:
        values = [m[key] for m in cohort_metrics]
        assert result[key] == pytest.approx(np.mean(values)), key
        assert result[f"{key}_std"] == pytest.approx(np.std(values)), key


def test_sampled_all_users_each_cohort_with_its_own_negatives(split, model):
    protocol = EvalProtocol(mode="sampled", n_negatives=5, n_cohorts=2, cohort_size=1000)
    result = evaluate(model, split, "test", protocol)
    assert result["n_users"] == N_USERS and "NDCG@10_std" in result
    (users_a, cands_a, _, _), (users_b, cands_b, _, _) = model.calls
    assert users_a.tolist() == users_b.tolist() == list(range(1, N_USERS + 1))
    assert not torch.equal(cands_a, cands_b)


def test_sampled_same_seed_same_result_other_seed_other_negatives(split, model):
    protocol = EvalProtocol(mode="sampled", n_negatives=5, n_cohorts=2)
    first = evaluate(model, split, "valid", protocol)
    calls = sampled_calls_by_user(model)
    model.calls.clear()
    assert evaluate(model, split, "valid", protocol) == first
    assert sampled_calls_by_user(model) == calls
    model.calls.clear()
    evaluate(model, split, "valid", EvalProtocol(mode="sampled", n_negatives=5, n_cohorts=2, seed=1))
    assert sampled_calls_by_user(model) != calls


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_chunking_does_not_change_results(split, model, mode):
    small = evaluate(model, split, "valid", EvalProtocol(mode=mode, n_negatives=8, cohort_size=9, batch_size=3))
    small_calls = model.calls[:]
    model.calls.clear()
    big = evaluate(model, split, "valid", EvalProtocol(mode=mode, n_negatives=8, cohort_size=9, batch_size=1000))
    assert small == big
    assert max(len(users) for users, *_ in small_calls) == 3 and len(model.calls) < len(small_calls)
    if mode == "sampled":
        assert torch.equal(torch.cat([c for _, c, _, _ in small_calls]), torch.cat([c for _, c, _, _ in model.calls]))


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_rng_is_seeded_and_forked(split, mode):
    """A model with global-RNG noise gives the same result whatever the caller's RNG state, and
    evaluate leaves that state untouched."""
    g = torch.Generator().manual_seed(1)
    noisy = TableModel(torch.randint(-2, 3, (N_USERS + 1, N_ITEMS + 1), generator=g).float(), noise=3.0)
    protocol = EvalProtocol(mode=mode, n_negatives=5, n_cohorts=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = evaluate(noisy, split, "valid", protocol)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)
    assert evaluate(noisy, split, "valid", protocol) == first
    other_seed = evaluate(noisy, split, "valid", EvalProtocol(mode=mode, n_negatives=5, n_cohorts=2, seed=7))
    assert other_seed != first


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_no_grad_and_mode_restored(split, model, training):
    model.train(training)
    evaluate(model, split, "valid", EvalProtocol(batch_size=5))
    assert model.training is training
    assert model.calls and all(not was_training and not grad for _, _, was_training, grad in model.calls)


def test_evaluate_rejects_bad_split(split, model):
    with pytest.raises(ValueError, match="split"):
        evaluate(model, split, "train", EvalProtocol())


def test_protocol_describe_as_dict_and_validation():
    assert EvalProtocol().describe() == ("full ranking over all items; history masked with -inf; "
                                         "HR/NDCG@{5,10,20}, MRR; all users")
    assert "set to 0" in EvalProtocol(history_mask="0").describe()
    sampled = EvalProtocol(mode="sampled", cohort_size=5000, ks=[10])
    assert sampled.ks == (10,)
    text = sampled.describe()
    assert "100 uniform negatives" in text and "5 cohorts of 5000 users" in text and "@{10}" in text
    assert EvalProtocol(**sampled.as_dict()) == sampled
    for bad in ({"mode": "top"}, {"history_mask": "-1e8"}, {"ks": ()}, {"ks": (0,)}, {"n_negatives": 0},
                {"n_cohorts": 0}, {"cohort_size": 0}, {"batch_size": 0}, {"seed": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            EvalProtocol(**bad)
