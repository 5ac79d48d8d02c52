"""Preprocessing: stable chronological sort, k-core vs a naive loop, first-appearance ids, filters, assembly."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_lib.data.parsers import DataFormatError, Interactions, ItemFacets
from seqrec_lib.data.preprocess import (
    KCore,
    Preprocessing,
    apply_filters,
    chronological_order,
    first_appearance_ids,
    kcore_mask,
    preprocess,
)


def naive_kcore(users, items, user_min, item_min) -> set[tuple]:
    """Surviving (user, item) pairs: alternate the two filters on a set of pairs until nothing changes."""
    pairs = set(zip(users.tolist(), items.tolist()))
    while True:
        user_degree, item_degree = {}, {}
        for u, _ in pairs:
            user_degree[u] = user_degree.get(u, 0) + 1
        kept = {(u, i) for u, i in pairs if user_degree[u] >= user_min}
        for _, i in kept:
            item_degree[i] = item_degree.get(i, 0) + 1
        kept = {(u, i) for u, i in kept if item_degree[i] >= item_min}
        if kept == pairs:
            return pairs
        pairs = kept


@pytest.mark.parametrize("seed", range(6))
def test_kcore_matches_naive_loop_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.zipf(1.6, n) % 200
    items = rng.zipf(1.4, n) % 150
    user_min, item_min = int(rng.integers(2, 8)), int(rng.integers(2, 8))
    mask = kcore_mask(users, items, KCore(user_min, item_min))
    survivors = naive_kcore(users, items, user_min, item_min)
    expected = np.array([(u, i) in survivors for u, i in zip(users.tolist(), items.tolist())])
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < n  # the case is not trivial


def test_kcore_counts_unique_pairs_and_keeps_repeats():
    # user 1 has 2 distinct items but 4 rows; with user_min 3 it goes, repeats do not count
    users = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    items = np.array([10, 10, 10, 11, 10, 11, 12, 10, 11, 12])
    mask = kcore_mask(users, items, KCore(3, 1))
    np.testing.assert_array_equal(mask, users != 1)
    # with user_min 2 user 1 survives and all its repeated rows are joined back
    assert kcore_mask(users, items, KCore(2, 1)).all()


def test_kcore_works_on_string_ids_and_is_a_fixed_point():
    rng = np.random.default_rng(7)
    users = np.array([f"u{x}" for x in rng.integers(0, 40, 800)], dtype=object)
    items = np.array([f"i{x}" for x in rng.integers(0, 60, 800)], dtype=object)
    mask = kcore_mask(users, items, KCore(12, 8))
    kept = set(zip(users[mask], items[mask]))
    per_user, per_item = {}, {}
    for u, i in kept:
        per_user[u] = per_user.get(u, 0) + 1
        per_item[i] = per_item.get(i, 0) + 1
    assert kept and min(per_user.values()) >= 12 and min(per_item.values()) >= 8
    assert kcore_mask(users[mask], items[mask], KCore(12, 8)).all()


def test_kcore_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="user_min=0"):
        KCore(0, 5)


def test_chronological_order_is_stable_against_python_sort():
    rng = np.random.default_rng(1)
    users = rng.integers(1, 30, 2000)
    timestamps = rng.integers(0, 20, 2000)  # many ties
    order = chronological_order(users, timestamps)
    expected = sorted(range(len(users)), key=lambda r: (users[r], timestamps[r]))  # Python's sort is stable
    np.testing.assert_array_equal(order, expected)


def test_chronological_order_without_timestamps_keeps_file_order():
    users = np.array([2, 1, 2, 1, 3])
    np.testing.assert_array_equal(chronological_order(users, None), [1, 3, 0, 2, 4])


def test_first_appearance_ids():
    ids, raw = first_appearance_ids(np.array([30, 10, 30, 20, 10]))
    np.testing.assert_array_equal(ids, [1, 2, 1, 3, 2])
    np.testing.assert_array_equal(raw, [30, 10, 20])


def test_s3rec_style_ids_come_out_unchanged():
    # a tiny S3-Rec file: users 1..3 in file order, items numbered by first appearance
    users = np.array([1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    items = np.array([1, 2, 3, 4, 5, 6, 1, 7, 4, 8, 2, 9])
    data = preprocess(Interactions(users, items), Preprocessing(), "tiny")
    assert (data.n_users, data.n_items) == (3, 9)
    np.testing.assert_array_equal(data.sequence(1), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(data.sequence(2), [6, 1, 7])
    np.testing.assert_array_equal(data.sequence(3), [4, 8, 2, 9])


def test_preprocess_sorts_each_user_by_time_then_row_and_reindexes():
    users = np.array([50, 70, 50, 70, 50, 60])
    items = np.array([5, 7, 6, 5, 8, 9])
    ts = np.array([300, 100, 100, 100, 100, 1])
    ratings = np.ones(6, dtype=np.float32)
    data = preprocess(Interactions(users, items, ts, ratings), Preprocessing(), "toy", provenance={"x": 1})
    # users by first appearance: 50 -> 1, 70 -> 2, 60 -> 3; items: 5, 7, 6, 8, 9 -> 1..5
    np.testing.assert_array_equal(data.offsets, [0, 3, 5, 6])
    np.testing.assert_array_equal(data.sequence(1), [3, 4, 1])  # ts 100 (row 2), 100 (row 4), 300
    np.testing.assert_array_equal(data.sequence(2), [2, 1])  # tie at 100 keeps row order 1, 3
    np.testing.assert_array_equal(data.timestamps, [100, 100, 300, 100, 100, 1])
    assert data.provenance["x"] == 1
    assert data.provenance["preprocessing"]["kcore"] is None
    assert data.provenance["row_counts"] == {"raw": 6}


def naive_filters(rows: list[tuple], config: Preprocessing) -> list[tuple]:
    """(user, item, ts, rating) rows → the rows kept by the filters, in file order."""
    rows = [r for r in rows if config.min_rating is None or r[3] >= config.min_rating]
    count = {}
    for r in rows:
        count[r[0]] = count.get(r[0], 0) + 1
    rows = [r for r in rows if config.min_user_interactions is None or count[r[0]] >= config.min_user_interactions]
    if config.keep_last is not None:
        keep = set()
        for user in {r[0] for r in rows}:
            mine = sorted((r for r in enumerate(rows) if r[1][0] == user), key=lambda x: x[1][2])
            keep.update(index for index, _ in mine[-config.keep_last:])
        rows = [r for index, r in enumerate(rows) if index in keep]
    if config.kcore is not None:
        survivors = naive_kcore(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                config.kcore.user_min, config.kcore.item_min)
        rows = [r for r in rows if (r[0], r[1]) in survivors]
    return rows


@pytest.mark.parametrize("config", [
    Preprocessing(min_rating=4.0),
    Preprocessing(min_user_interactions=15),
    Preprocessing(keep_last=6),
    Preprocessing(min_rating=3.0, min_user_interactions=8, keep_last=10, kcore=KCore(5, 3)),
])
def test_filters_match_naive_reference(config):
    rng = np.random.default_rng(3)
    n = 1500
    data = Interactions(rng.integers(0, 80, n), rng.integers(0, 60, n), rng.integers(0, 50, n),
                        rng.integers(1, 6, n).astype(np.float32))
    kept, counts = apply_filters(data, config)
    rows = list(zip(data.users.tolist(), data.items.tolist(), data.timestamps.tolist(), data.ratings.tolist()))
    expected = naive_filters(rows, config)
    got = list(zip(kept.users.tolist(), kept.items.tolist(), kept.timestamps.tolist(), kept.ratings.tolist()))
    assert got == expected
    assert counts["raw"] == n and list(counts.values())[-1] == len(expected) < n


def test_min_rating_without_ratings_is_an_error():
    with pytest.raises(ValueError, match="min_rating=4.0 needs ratings.*Beauty.txt"):
        apply_filters(Interactions(np.array([1]), np.array([1]), source="Beauty.txt"), Preprocessing(min_rating=4.0))


def test_preprocessing_parameters_are_validated():
    with pytest.raises(ValueError, match="keep_last"):
        Preprocessing(keep_last=0)


def test_everything_filtered_is_an_error():
    data = Interactions(np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(ValueError, match="no interactions are left"):
        preprocess(data, Preprocessing(kcore=KCore(5, 5)), "tiny")


def test_facets_follow_the_new_item_ids():
    data = Interactions(np.array([1, 1, 2]), np.array([30, 10, 30]))
    facets = ItemFacets("genre", {10: ("Drama",), 30: ("Action", "Comedy"), 99: ("Unused",)}, "u.item")
    out = preprocess(data, Preprocessing(), "tiny", facets=(facets,))
    assert out.item_facets == {"genre": [(), ("Action", "Comedy"), ("Drama",)]}


def test_missing_facet_entry_names_the_facet_file():
    data = Interactions(np.array([1, 1]), np.array([30, 10]))
    facets = ItemFacets("genre", {30: ("Action",)}, "/data/u.item")
    with pytest.raises(DataFormatError, match=r"/data/u\.item.*no 'genre' entry.*item 10"):
        preprocess(data, Preprocessing(), "tiny", facets=(facets,))
