"""Synthetic data: determinism, well-formed sequences, planted facets and time effects visible in the data,
and learnability (simple predictors that use only the data beat most-popular by a wide margin)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from seqrec_lib.data import build_splits, load_dataset
from seqrec_lib.data.synthetic import SyntheticConfig, generate_synthetic, pick_contexts, time_context


@lru_cache(maxsize=None)
def world(n_users: int = 400, seed: int = 0):
    return generate_synthetic(SyntheticConfig(n_users=n_users, seed=seed))


def facet_ids(data, facet: str) -> np.ndarray:
    """[n_items + 1] integer value of a one-label facet (-1 at padding)."""
    return np.array([int(labels[0][1:]) if labels else -1 for labels in data.item_facets[facet]])


def test_same_seed_same_data_other_seed_other_data():
    a, truth_a = generate_synthetic(SyntheticConfig.smoke(seed=3))
    b, truth_b = generate_synthetic(SyntheticConfig.smoke(seed=3))
    c, _ = generate_synthetic(SyntheticConfig.smoke(seed=4))
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert truth_a.preferred == truth_b.preferred
    assert len(a.items) != len(c.items) or not np.array_equal(a.items, c.items)


def test_sequences_are_well_formed():
    config = SyntheticConfig.smoke()
    data, truth = generate_synthetic(config)
    assert (data.n_users, data.n_items) == (config.n_users, config.n_items)
    lengths = data.lengths
    assert lengths.min() >= config.min_length and lengths.max() <= config.max_length
    assert data.items.min() >= 1 and data.items.max() <= config.n_items
    for user in range(1, data.n_users + 1):
        seq = data.sequence(user)
        assert len(set(seq.tolist())) == len(seq)  # no repeats: history masking never hides the target
        ts = data.timestamps[data.offsets[user - 1]:data.offsets[user]]
        assert np.all(np.diff(ts) >= 0)
    assert data.timestamps.min() >= config.start
    assert set(data.item_facets) == {"genre", "creator"}
    for facet, labels in data.item_facets.items():
        assert labels[0] == () and len(labels) == config.n_items + 1
        assert all(len(label) == 1 and label[0][0] == facet[0] for label in labels[1:])
    assert truth.item_facets == data.item_facets
    assert len(truth.contexts) == len(truth.reasons) == data.n_interactions
    assert set(truth.dominant_facet) == {"genre", "creator"}


def test_truth_is_consistent_with_the_data():
    data, truth = world()
    creator = facet_ids(data, "creator")
    expected = np.concatenate([pick_contexts(data.timestamps[data.offsets[u]:data.offsets[u + 1]])
                               for u in range(data.n_users)])
    np.testing.assert_array_equal(truth.contexts, expected)
    users = np.repeat(np.arange(data.n_users), data.lengths)
    preferred_picks = np.flatnonzero(truth.reasons == 1)
    assert len(preferred_picks) > data.n_interactions / 2
    for row in preferred_picks:
        facet = truth.dominant_facet[users[row]]
        label = data.item_facets[facet][data.items[row]][0]
        assert label in truth.preferred[users[row]][truth.contexts[row]]
    series = np.flatnonzero(truth.reasons == 0)
    assert len(series) > 0 and np.all(creator[data.items[series]] == creator[data.items[series - 1]])
    assert np.all(data.items[series] > data.items[series - 1])  # series order = id order within a creator


def test_pick_contexts_lag_by_one_visit():
    monday = 1_609_718_400
    ts = np.array([monday + 9 * 3600, monday + 19 * 3600, monday + 86_400 + 10 * 3600])
    np.testing.assert_array_equal(pick_contexts(ts), [0, 0, 1])


def test_time_context_by_hand():
    # 2021-01-04 was a Monday: 09:00 -> weekday daytime; 19:00 -> evening; Saturday 2021-01-09 10:00 -> weekend
    monday = 1_609_718_400
    ts = np.array([monday + 9 * 3600, monday + 19 * 3600, monday + 5 * 86_400 + 10 * 3600, monday + 7 * 3600])
    np.testing.assert_array_equal(time_context(ts), [0, 1, 1, 1])


def test_time_effect_is_visible_in_the_data():
    """A user's choices of the dominant facet follow the half of their preferences that fits the time."""
    data, truth = world()
    values = {"genre": facet_ids(data, "genre"), "creator": facet_ids(data, "creator")}
    in_context = other_context = 0
    for user in range(data.n_users):
        facet = truth.dominant_facet[user]
        prefix = "g" if facet == "genre" else "c"
        rows = np.arange(data.offsets[user], data.offsets[user + 1])
        for row in rows:
            label = f"{prefix}{values[facet][data.items[row]]}"
            context = truth.contexts[row]
            in_context += label in truth.preferred[user][context]
            other_context += label in truth.preferred[user][1 - context]
    n = data.n_interactions
    # p_preferred = 0.7 of the non-series picks follow the context (plus popular picks that land there)
    assert in_context / n > 0.55 and other_context / n < 0.12
    assert 0.3 < np.mean(truth.contexts == 0) < 0.6  # both contexts are common


def hit_rate_at_10(data, score) -> float:
    """HR@10 of the last item of every user, history masked, given score(user, history, contexts) -> [n+1]."""
    hits = 0
    for user in range(1, data.n_users + 1):
        seq = data.sequence(user)
        contexts = pick_contexts(data.timestamps[data.offsets[user - 1]:data.offsets[user]])
        scores = score(seq[:-1], contexts).astype(float)
        scores[0] = -np.inf
        scores[seq[:-1]] = -np.inf
        hits += int((scores > scores[seq[-1]]).sum() < 10)
    return hits / data.n_users


@pytest.mark.slow
def test_data_is_learnable_and_time_helps():
    """Predictors that see only the data: most-popular vs (series next + the user's facet counts), the
    latter without and with the time context the target follows, which is that of the last input's
    timestamp (a lagged effect a time-aware model reads from its inputs)."""
    data, _ = world()
    genre, creator = facet_ids(data, "genre"), facet_ids(data, "creator")
    next_in_series = np.zeros(data.n_items + 1, dtype=np.int64)
    for value in np.unique(creator[1:]):
        series = np.flatnonzero(creator == value)
        next_in_series[series[:-1]] = series[1:]
    popularity = np.zeros(data.n_items + 1)
    for user in range(1, data.n_users + 1):
        np.add.at(popularity, data.sequence(user)[:-1], 1)
    big = 10 * popularity.max()

    def facet_score(use_time: bool):
        def score(history, contexts):
            seen = history[contexts[:-1] == contexts[-1]] if use_time else history
            counts = np.bincount(genre[seen], minlength=genre.max() + 1)[genre] \
                + np.bincount(creator[seen], minlength=creator.max() + 1)[creator]
            out = popularity + big * counts
            out[next_in_series[history[-1]]] += 1e9
            return out
        return score

    popular = hit_rate_at_10(data, lambda history, contexts: popularity.copy())
    blind = hit_rate_at_10(data, facet_score(False))
    aware = hit_rate_at_10(data, facet_score(True))
    assert blind > 3 * popular
    assert aware > blind + 0.03


def test_splits_and_load_dataset_on_the_smoke_size():
    config = SyntheticConfig.smoke()
    data = load_dataset("synthetic", synthetic=config)
    split = build_splits(data, max_len=8)
    assert split.has_time and split.train.items.shape == (config.n_users, 8)
    assert data.provenance["config"]["n_users"] == config.n_users


def test_default_config_size():
    config = SyntheticConfig()
    assert (config.n_users, config.n_items, config.min_length, config.max_length) == (1000, 500, 8, 40)


@pytest.mark.parametrize("change, rule", [
    ({"n_preferred": 1}, "n_preferred >= 2"),
    ({"min_length": 3}, "4 <= min_length"),
    ({"n_creators": 600}, "n_items >= max"),
    ({"p_series": 1.5}, "p_series"),
])
def test_config_validation(change, rule):
    with pytest.raises(ValueError, match=rule):
        SyntheticConfig(**change)
