import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import Tensor

import seqrec_lib.analysis as analysis
from seqrec_lib.analysis import (CaseStudy, bootstrap_ci, case_study, compare_head_diversity, diversity_table,
                                 facet_table, head_diversity, head_facet_alignment, paired_bootstrap,
                                 per_user_head_distances)
from seqrec_lib.batch import Batch
from seqrec_lib.data.sequences import SequenceData, build_splits
from seqrec_lib.metrics import full_ranks
from seqrec_lib.models.base import ModelOutput, SequentialModel
from seqrec_lib.models.fame import Fame, FameConfig
from seqrec_lib.models.mojito import Mojito, MojitoConfig
from seqrec_lib.models.sasrec import SASRec, SASRecConfig
from tests.helpers import random_sequences, tiny_split

L = 10


class FixedMaps(SequentialModel):
    """Returns stored per-user attention maps [U, H, L, L] and head outputs [U, H, L, d_h] per layer."""

    def __init__(self, attention: list[Tensor], head_outputs: list[Tensor], n_items: int) -> None:
        super().__init__()
        self.maps, self.outs, self.n_items = attention, head_outputs, n_items

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        rows = batch.users - 1
        out = ModelOutput(states=torch.zeros(len(batch), L, 4))
        if return_attention:
            out.attention = [a[rows] for a in self.maps]
            out.head_outputs = [o[rows] for o in self.outs]
        return out

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        return torch.zeros(len(batch), self.n_items + 1)

    def loss(self, batch: Batch) -> Tensor:
        return torch.zeros(())


def fixed_maps(split, heads=(2, 3), d_h=4, seed=0) -> FixedMaps:
    """Random row-stochastic maps with garbage in the padded rows/columns (which must not matter)."""
    g = torch.Generator().manual_seed(seed)
    U = split.n_users
    maps = [torch.rand(U, H, L, L, generator=g, dtype=torch.float64).softmax(-1) for H in heads]
    outs = [torch.randn(U, H, L, d_h, generator=g, dtype=torch.float64) * (1 + torch.arange(H))[:, None, None]
            for H in heads]
    return FixedMaps(maps, outs, split.n_items)


def naive_distances(model: FixedMaps, split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user loops over the non-padded block: D_att, D_out, D_out on unit-norm heads [U, n_layers]."""
    att, out, unit = (np.zeros((split.n_users, len(model.maps))) for _ in range(3))
    for u in range(split.n_users):
        keep = torch.nonzero(split.test.items[u] > 0).flatten()
        for layer, (A, O) in enumerate(zip(model.maps, model.outs)):
            a = A[u][:, keep][:, :, keep]
            o = O[u][:, keep]
            pairs = list(itertools.combinations(range(A.shape[1]), 2))
            att[u, layer] = np.mean([torch.linalg.norm(a[h] - a[g]).item() for h, g in pairs])
            out[u, layer] = np.mean([torch.linalg.norm(o[h] - o[g]).item() for h, g in pairs])
            unit[u, layer] = np.mean([torch.linalg.norm(o[h] / o[h].norm() - o[g] / o[g].norm()).item()
                                      for h, g in pairs])
    return att, out, unit


@pytest.fixture(scope="module")
def split():
    return tiny_split(max_len=L)


@pytest.fixture(scope="module")
def time_split():
    return build_splits(random_sequences(with_time=True), max_len=L)


# --------------------------------------------------------------------------------------------- distances


def test_distances_match_naive_loops_over_the_non_padded_block(split):
    model = fixed_maps(split)
    assert bool((split.test.items == 0).any())          # some padding to ignore
    dist = per_user_head_distances(model, split, batch_size=7)
    att, out, unit = naive_distances(model, split)
    np.testing.assert_allclose(dist.attention, att, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.output, out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.output_unit, unit, rtol=1e-9, atol=1e-12)
    lengths = (split.test.items > 0).sum(1).numpy()
    np.testing.assert_array_equal(dist.lengths, lengths)
    np.testing.assert_array_equal(dist.users, split.test.users.numpy())
    np.testing.assert_allclose(dist.attention_norm, att / np.sqrt(2 * lengths)[:, None])
    assert dist.n_heads == (2, 3)


def test_batch_size_does_not_change_distances(split):
    model = fixed_maps(split)
    a = per_user_head_distances(model, split, batch_size=3)
    b = per_user_head_distances(model, split, batch_size=1000)
    np.testing.assert_allclose(a.attention, b.attention, rtol=1e-12)
    np.testing.assert_allclose(a.output, b.output, rtol=1e-12)


def test_identical_heads_give_zero_distance(split):
    model = fixed_maps(split, heads=(2,))
    model.maps[0][:, 1] = model.maps[0][:, 0]
    model.outs[0][:, 1] = 3 * model.outs[0][:, 0]
    dist = per_user_head_distances(model, split)
    np.testing.assert_allclose(dist.attention, 0.0, atol=1e-7)
    np.testing.assert_allclose(dist.output_unit, 0.0, atol=1e-7)     # same direction, different scale
    assert (dist.output > 0).all()


def test_table_rows_and_values(split):
    model = fixed_maps(split)
    table = head_diversity(model, split, n_boot=200, seed=3)
    assert list(table.columns) == ["layer", "quantity", "mean", "ci_low", "ci_high", "n_users", "n_heads"]
    assert list(zip(table.layer, table.quantity)) == [
        (layer, q) for layer in (1, 2) for q in ("attention", "attention_norm", "output")]
    assert (table.n_users == split.n_users).all() and list(table.n_heads) == [2] * 3 + [3] * 3
    att, out, _ = naive_distances(model, split)
    row = table[(table.layer == 2) & (table.quantity == "output")].iloc[0]
    mean, lo, hi = bootstrap_ci(out[:, 1], n_boot=200, seed=3)
    assert row["mean"] == pytest.approx(mean) and row["ci_low"] == pytest.approx(lo)
    assert row["ci_high"] == pytest.approx(hi)
    assert (table.ci_low <= table["mean"]).all() and (table["mean"] <= table.ci_high).all()
    full = head_diversity(model, split, n_boot=200, seed=3, normalise=True)
    assert list(full.quantity[:4]) == ["attention", "attention_norm", "output", "output_norm"]


def test_one_head_is_an_error(split):
    with pytest.raises(ValueError, match="H >= 2"):
        head_diversity(fixed_maps(split, heads=(2, 1)), split, n_boot=10)
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(d=16, n_heads=1, max_len=L), split.n_items)
    with pytest.raises(ValueError, match="H = 1"):
        head_diversity(sasrec, split, n_boot=10)


@pytest.mark.parametrize("name", ["sasrec", "fame", "mojito"])
def test_head_diversity_runs_on_every_model(time_split, name):
    torch.manual_seed(0)
    if name == "sasrec":
        model = SASRec(SASRecConfig(d=16, n_blocks=2, n_heads=2, max_len=L), time_split.n_items)
    elif name == "fame":
        model = Fame(FameConfig(d=16, n_blocks=2, n_heads=2, n_experts=3, max_len=L), time_split.n_items)
    else:
        model = Mojito.from_split(MojitoConfig(d=8, n_heads=2, d_t=4, max_len=L, fism_items=6), time_split)
    model.train()
    state = torch.random.get_rng_state()
    table = head_diversity(model, time_split, n_boot=100, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), state)              # the caller's RNG is untouched
    assert model.training                                                # mode restored
    assert len(table) == 2 * 3 and (table.n_heads == 2).all() and (table.n_users == time_split.n_users).all()
    assert np.isfinite(table[["mean", "ci_low", "ci_high"]].to_numpy()).all()
    norm = table[table.quantity == "attention_norm"]
    assert ((norm["mean"] > 0) & (norm.ci_high <= 1)).all()
    again = head_diversity(model, time_split, n_boot=100, batch_size=16)  # eval noise (MOJITO) is seeded
    np.testing.assert_array_equal(table["mean"].to_numpy(), again["mean"].to_numpy())


def test_mojito_noise_depends_on_the_seed(time_split):
    torch.manual_seed(0)
    model = Mojito.from_split(MojitoConfig(d=8, n_heads=2, d_t=4, max_len=L, fism_items=6, sigma_init=1.0),
                              time_split)
    a = per_user_head_distances(model, time_split, seed=0)
    b = per_user_head_distances(model, time_split, seed=1)
    assert not np.allclose(a.attention, b.attention)


# --------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_scipys_percentile_bootstrap_and_is_reproducible(monkeypatch):
    values = np.random.default_rng(1).normal(size=37)
    mean, lo, hi = bootstrap_ci(values, n_boot=500, seed=4)
    direct = stats.bootstrap((values,), np.mean, n_resamples=500, method="percentile", confidence_level=0.95,
                             rng=np.random.default_rng(4)).confidence_interval
    assert mean == values.mean() and (lo, hi) == (direct.low, direct.high)
    assert lo < mean < hi
    assert bootstrap_ci(values, n_boot=500, seed=4) == (mean, lo, hi)
    other = bootstrap_ci(values, n_boot=500, seed=5)
    assert other[0] == mean and other[1:] != (lo, hi)
    monkeypatch.setattr(analysis, "_BOOT_CHUNK", 100)                     # batching does not change the draws
    assert bootstrap_ci(values, n_boot=500, seed=4) == pytest.approx((mean, lo, hi), rel=1e-12)
    assert bootstrap_ci(torch.from_numpy(values), n_boot=500, seed=4) == pytest.approx((mean, lo, hi), rel=1e-12)


def test_column_bootstrap_shares_resamples_and_matches_scipy_along_axis():
    rng = np.random.default_rng(6)
    values = rng.normal(size=(60, 3)) * [1.0, 5.0, 0.1]
    mean, lo, hi = analysis._bootstrap_columns(values, 400, 2, 0.9)
    direct = stats.bootstrap((values,), np.mean, n_resamples=400, axis=0, method="percentile", confidence_level=0.9,
                             rng=np.random.default_rng(2)).confidence_interval
    np.testing.assert_allclose(mean, values.mean(0), rtol=1e-15)
    np.testing.assert_allclose(lo, direct.low, rtol=1e-12)
    np.testing.assert_allclose(hi, direct.high, rtol=1e-12)
    for j in range(3):                                                      # the same resamples for every column
        assert bootstrap_ci(values[:, j], n_boot=400, seed=2, level=0.9) == pytest.approx((mean[j], lo[j], hi[j]),
                                                                                           rel=1e-12)
    # the paired / column-wise callers go through the same intervals
    table = diversity_table(analysis.HeadDistances(
        users=np.arange(60), lengths=np.full(60, 5), attention=values[:, :2], output=values[:, 1:],
        output_unit=values[:, 1:], n_heads=(2, 2)), n_boot=400, seed=2, level=0.9)
    row = table[(table.layer == 2) & (table.quantity == "output")].iloc[0]
    assert (row.ci_low, row.ci_high) == pytest.approx(bootstrap_ci(values[:, 2], 400, 2, 0.9)[1:], rel=1e-12)


def test_bootstrap_ci_shrinks_like_one_over_root_n():
    rng = np.random.default_rng(0)
    _, lo_small, hi_small = bootstrap_ci(rng.normal(size=100), seed=0)
    _, lo_big, hi_big = bootstrap_ci(rng.normal(size=10_000), seed=0)
    assert 7 < (hi_small - lo_small) / (hi_big - lo_big) < 14               # √100 = 10
    width = hi_small - lo_small                                             # normal theory: 2 · 1.96 / √100
    assert 0.6 * 0.392 < width < 1.4 * 0.392
    _, lo_50, hi_50 = bootstrap_ci(rng.normal(size=100), seed=0, level=0.5)
    assert 0.6 * 0.135 < hi_50 - lo_50 < 1.4 * 0.135                      # 2 · 0.674 / √100


@pytest.mark.parametrize(("level", "low", "high"), [(0.95, 0.90, 0.985), (0.5, 0.38, 0.62)])
def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate(level, low, high):
    rng = np.random.default_rng(11)
    trials, n, true_mean = 300, 60, 1.0                                    # exponential: skewed, mean 1
    covered = 0
    for trial in range(trials):
        _, lo, hi = bootstrap_ci(rng.exponential(true_mean, size=n), n_boot=400, seed=trial, level=level)
        covered += lo <= true_mean <= hi
    assert low < covered / trials < high


def test_bootstrap_of_values_without_spread():
    assert bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)                        # one user
    mean, lo, hi = bootstrap_ci([0.1] * 7)                                  # all equal
    assert mean == pytest.approx(0.1) and lo == hi == mean
    assert paired_bootstrap([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]) == pytest.approx((0.5, 0.5, 0.5))
    values = np.random.default_rng(3).normal(size=(40, 3))
    values[:, 1] = 2.0                                                      # one constant column among varied ones
    mean, lo, hi = analysis._bootstrap_columns(values, 300, 1, 0.95)
    assert lo[1] == hi[1] == mean[1] == 2.0
    for j in (0, 2):                                                        # the others are unaffected by it
        assert (mean[j], lo[j], hi[j]) == pytest.approx(bootstrap_ci(values[:, j], 300, 1), rel=1e-12)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_paired_bootstrap(split):
    rng = np.random.default_rng(2)
    a = rng.normal(size=50)
    b = a - 0.3 + rng.normal(scale=0.01, size=50)
    diff, lo, hi = paired_bootstrap(a, b, n_boot=300, seed=1)
    assert (diff, lo, hi) == bootstrap_ci(a - b, n_boot=300, seed=1)
    assert lo < 0.3 < hi and hi - lo < 0.02                              # pairing removes the user spread
    m1, m2 = fixed_maps(split, seed=0), fixed_maps(split, seed=1)
    d1, d2 = per_user_head_distances(m1, split), per_user_head_distances(m2, split)
    table = compare_head_diversity(d1, d2, "attention", n_boot=100)
    assert table.mean_diff.to_numpy() == pytest.approx((d1.attention - d2.attention).mean(0))
    assert list(diversity_table(d1, n_boot=100)["mean"][:1]) == pytest.approx([d1.attention[:, 0].mean()])


# --------------------------------------------------------------------------------------------- case study


def with_facets(data: SequenceData) -> SequenceData:
    """Genre = item % 3 (items divisible by 5 also 'x'); shelf = 'odd'/'even'; padding has no labels."""
    genre = [()] + [(f"g{i % 3}",) + (("x",) if i % 5 == 0 else ()) for i in range(1, data.n_items + 1)]
    shelf = [()] + [("odd" if i % 2 else "even",) for i in range(1, data.n_items + 1)]
    return dataclasses.replace(data, item_facets={"genre": genre, "shelf": shelf})


@pytest.fixture(scope="module")
def fame_setup():
    data = with_facets(random_sequences())
    split = build_splits(data, max_len=L)
    torch.manual_seed(0)
    model = Fame(FameConfig(d=16, n_blocks=2, n_heads=2, n_experts=3, max_len=L), split.n_items).eval()
    torch.manual_seed(1)
    base = SASRec(SASRecConfig(d=16, n_blocks=2, n_heads=2, max_len=L), split.n_items).eval()
    return data, split, model, base


def naive_top(scores: Tensor, seen: set[int], k: int) -> list[int]:
    s = scores.clone().double()
    s[0] = float("-inf")
    s[list(seen)] = float("-inf")
    return [int(i) for i in np.argsort(-s.numpy(), kind="stable")[:k]]


@pytest.mark.parametrize("user", [1, 7, 23])
def test_case_study_against_direct_computation(fame_setup, user):
    data, split, model, base = fame_setup
    case = case_study(model, split, user, k=10, data=data, baseline=base)
    seq = data.sequence(user)
    seen = set(seq[:-1].tolist())
    assert case.target == seq[-1] and case.history == seq[:-1][-L:].tolist()
    assert case.gate.shape == (2,) and case.gate.sum() == pytest.approx(1.0)
    one = split.test.select(torch.tensor([user - 1]))
    with torch.no_grad():
        out = model(one)
        heads = model.head_scores(out)[0]
        combined, baseline = model.predict(one)[0], base.predict(one)[0]
    assert case.gate == pytest.approx(out.extras["gate"][0, -1].numpy())
    for h in range(2):
        assert case.head_lists[h] == naive_top(heads[h], seen, 10)
    assert case.combined_list == naive_top(combined, seen, 10)
    assert case.baseline_list == naive_top(baseline, seen, 10)
    for lst in case.head_lists + [case.combined_list, case.baseline_list]:
        assert len(lst) == 10 and not seen & set(lst)
    history = split.test_history.mask(one.users, split.n_items)
    target = one.last_targets
    for h in range(2):
        assert case.head_ranks[h] == int(full_ranks(heads[h:h + 1], target, history)[0])
    assert case.combined_rank == int(full_ranks(combined[None], target, history)[0])
    assert case.baseline_rank == int(full_ranks(baseline[None], target, history)[0])
    for lst, rank in zip(case.head_lists + [case.combined_list], case.head_ranks + [case.combined_rank]):
        assert (case.target in lst) == (rank < 10)
        if rank < 10:
            assert lst.index(case.target) == rank
    listed = set(case.history) | {case.target} | set(case.combined_list) | set(case.baseline_list)
    listed |= {i for lst in case.head_lists for i in lst}
    assert set(case.facets) == listed
    assert case.facets[case.target] == {"genre": data.item_facets["genre"][case.target],
                                        "shelf": data.item_facets["shelf"][case.target]}


def test_case_study_train_reading_and_errors(fame_setup):
    data, split, model, base = fame_setup
    case = case_study(model, split, 5, which="train")
    seq = data.sequence(5)
    assert case.target == seq[-3] and case.history == seq[:-3][-L:].tolist()
    assert not set(seq[:-3].tolist()) & {i for lst in case.head_lists for i in lst}
    assert case.facets == {} and case.baseline_list is None
    with pytest.raises(ValueError, match="head_scores"):
        case_study(base, split, 5)
    with pytest.raises(ValueError, match="user 999"):
        case_study(model, split, 999)
    model.train()
    case_study(model, split, 5)
    assert model.training
    model.eval()


def test_facet_table_against_hand_counts():
    facets = {i: {"genre": ("a",) if i < 4 else ("b", "a") if i < 6 else ("c",)} for i in range(1, 10)}
    case = CaseStudy(user=1, which="test", k=3, history=[1, 2, 7], target=5, gate=np.array([0.25, 0.75]),
                     head_lists=[[7, 8, 9], [5, 4, 1]], head_ranks=[6, 0], combined_list=[4, 5, 8],
                     combined_rank=1, baseline_list=[8, 9, 3], baseline_rank=4, facets=facets)
    table = facet_table(case)
    assert list(table.list) == ["history", "head 1", "head 2", "combined", "baseline"]
    assert table.gate.iloc[1:3].tolist() == [0.25, 0.75]
    assert table.target_rank.iloc[1:].tolist() == [7, 1, 2, 5]            # 1 = top, as the figure prints
    assert pd.isna(table.target_rank.iloc[0])
    assert table.hit.iloc[1:].tolist() == [False, True, True, False]
    assert table["items"].tolist() == ["1 2 7", "7 8 9", "[5] 4 1", "4 [5] 8", "8 9 3"]
    assert table.genre_top.tolist() == ["a", "c", "a", "a", "c"]
    assert table.genre_share.tolist() == pytest.approx([2 / 3, 1.0, 1.0, 2 / 3, 2 / 3])


def naive_alignment(model, split, data, facet, k, n_labels):
    """Per-user loops: (per-user shares [n, H+1], per-user chance [n])."""
    labels = data.item_facets[facet]
    with torch.no_grad():                                 # one forward for all users; loops below
        out = model(split.test)
        all_heads, all_combined = model.head_scores(out), model.score(out, split.test)
    shares, chances = [], []
    for u in range(1, split.n_users + 1):
        seq = data.sequence(u)
        seen, target = set(seq[:-1].tolist()), int(seq[-1])
        counts: dict[str, int] = {}
        for i in seq[:-1]:
            for lab in set(labels[i]):
                counts[lab] = counts.get(lab, 0) + 1
        kth = sorted(counts.values(), reverse=True)[min(n_labels, len(counts)) - 1]
        dominant = {lab for lab, c in counts.items() if c >= kth}
        lists = [naive_top(s, seen - {target}, k) for s in all_heads[u - 1]]
        lists.append(naive_top(all_combined[u - 1], seen - {target}, k))
        shares.append([np.mean([bool(dominant & set(labels[i])) for i in lst]) for lst in lists])
        cands = [i for i in range(1, split.n_items + 1) if i not in seen - {target}]
        chances.append(np.mean([bool(dominant & set(labels[i])) for i in cands]))
    return np.array(shares), np.array(chances)


@pytest.mark.parametrize("facet, n_labels", [("genre", 1), ("genre", 2), ("shelf", 1)])
def test_head_facet_alignment_against_naive_loops(fame_setup, facet, n_labels):
    data, split, model, _ = fame_setup
    table = head_facet_alignment(model, split, data.item_facets, facet, k=5, n_labels=n_labels,
                                 batch_size=9, n_boot=100)
    shares, chances = naive_alignment(model, split, data, facet, 5, n_labels)
    assert list(table.list) == ["head 1", "head 2", "combined"] and (table.n_users == split.n_users).all()
    np.testing.assert_allclose(table.share.to_numpy(), shares.mean(0), atol=1e-12)
    assert table.chance.iloc[0] == pytest.approx(chances.mean())
    assert (table.ci_low <= table.share).all() and (table.share <= table.ci_high).all()
    assert table.gate.iloc[:2].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown facet"):
        head_facet_alignment(model, split, data.item_facets, "colour")


def test_head_facet_alignment_leaves_out_labels_on_every_item(fame_setup):
    data, split, model, _ = fame_setup
    genre = data.item_facets["genre"]
    facets = {"genre": genre, "with_all": [genre[0]] + [tuple(t) + ("all",) for t in genre[1:]],
              "only_all": [()] + [("all",)] * split.n_items}
    plain = head_facet_alignment(model, split, facets, "genre", k=5, n_boot=100)
    padded = head_facet_alignment(model, split, facets, "with_all", k=5, n_boot=100)
    pd.testing.assert_frame_equal(plain, padded)
    with pytest.raises(ValueError, match="no label that some item lacks"):
        head_facet_alignment(model, split, facets, "only_all")


def test_gate_trust_against_per_user_case_studies(fame_setup):
    """Every row of gate_trust is the mean over users of what case_study says of each user."""
    data, split, model, base = fame_setup
    k = 5
    table = analysis.gate_trust(model, split, k=k, batch_size=7, n_boot=50).set_index("quantity")
    cases = [case_study(model, split, u, k=k) for u in range(1, split.n_users + 1)]
    trusted = [int(np.argmax(c.gate)) for c in cases]
    differ = [(c, t) for c, t in zip(cases, trusted) if len(set(c.head_ranks)) > 1]
    single = [(c, t) for c, t in zip(cases, trusted) if sum(r < k for r in c.head_ranks) == 1]
    expected = {
        "trusted head ranks the target best": [c.head_ranks[t] == min(c.head_ranks) for c, t in differ],
        f"only one head lists it in its top-{k}, and the gate trusts that head": [
            c.head_ranks[t] < k for c, t in single],
        "weight of the trusted head": [max(c.gate) for c in cases],
        f"target in the combined top-{k}": [c.combined_rank < k for c in cases],
        f"target in some head's top-{k}": [min(c.head_ranks) < k for c in cases],
    }
    assert list(table.index) == list(expected)
    for quantity, values in expected.items():
        row = table.loc[quantity]
        assert row.n_users == len(values) and len(values) > 0, quantity
        assert row.value == pytest.approx(np.mean(values), abs=1e-12), quantity
        assert row.ci_low <= row.value <= row.ci_high
    assert table.loc["weight of the trusted head", "chance"] == 0.5
    with pytest.raises(ValueError, match="head_scores"):
        analysis.gate_trust(base, split)
    one_head = Fame(FameConfig(d=16, n_blocks=2, n_heads=1, n_experts=2, max_len=L), split.n_items).eval()
    with pytest.raises(ValueError, match="needs H ≥ 2"):
        analysis.gate_trust(one_head, split)


def _distances(values: np.ndarray, users: np.ndarray) -> analysis.HeadDistances:
    """HeadDistances with every quantity set to ``values`` [n, n_layers] (lengths 2, two heads per layer)."""
    return analysis.HeadDistances(users=users, lengths=np.full(len(users), 2), attention=values, output=values,
                                  output_unit=values, n_heads=(2,) * values.shape[1])


def test_seeds_diversity_table_against_a_naive_computation():
    rng = np.random.default_rng(3)
    users = np.arange(1, 41)
    seeds = [_distances(rng.random((40, 2)) + s, users) for s in range(3)]
    table = analysis.seeds_diversity_table(seeds, n_boot=500, seed=1)
    attention = table[table["quantity"] == "attention"].set_index("layer")
    for layer in (1, 2):
        per_seed = [d.attention[:, layer - 1].mean() for d in seeds]
        assert attention.loc[layer, "mean"] == pytest.approx(np.mean(per_seed))
        assert attention.loc[layer, "seed_std"] == pytest.approx(np.std(per_seed, ddof=1))
        pooled = np.mean([d.attention[:, layer - 1] for d in seeds], axis=0)
        lo, hi = analysis.bootstrap_ci(pooled, n_boot=500, seed=1)[1:]
        assert attention.loc[layer, "ci_low"] < attention.loc[layer, "mean"] < attention.loc[layer, "ci_high"]
        assert (attention.loc[layer, "ci_low"], attention.loc[layer, "ci_high"]) == pytest.approx((lo, hi))
    assert set(table["n_seeds"]) == {3}
    single = analysis.seeds_diversity_table(seeds[:1], n_boot=200)
    assert single["seed_std"].isna().all()
    assert np.allclose(single["mean"], analysis.diversity_table(seeds[0], n_boot=200)["mean"])


def test_mean_over_seeds_refuses_other_users():
    a = _distances(np.ones((3, 1)), np.array([1, 2, 3]))
    b = _distances(np.ones((3, 1)), np.array([1, 2, 4]))
    with pytest.raises(ValueError, match="different users"):
        analysis.mean_over_seeds([a, b])
