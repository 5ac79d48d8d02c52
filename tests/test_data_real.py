"""Real data under ``SEQREC_DATA_DIR`` (marker ``realdata``; skipped when the files are absent): exact
statistics of docs/data.md §3 and §5, ids kept as in the S3-Rec files, Sports user 230,
the ML-1M 10/5-core, facets, and the registry's checksums against the data folder's SHA256SUMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec_lib.data import KCore, build_splits, get_spec, kcore_mask, load_dataset
from seqrec_lib.data.parsers import read_ml1m_genres, read_ml100k_genres, read_ml100k_ratings
from tests.helpers import need_datasets, need_real_data

pytestmark = pytest.mark.realdata

@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def load(name: str, cache: Path):
    root = need_datasets(name)
    return load_dataset(name, data_dir=root, download=False, cache_dir=cache)


# docs/data.md §3: users, items, actions | p50, p90, p99, max, users > 50, users with 5, training targets (L = 50)
AMAZON = {
    "beauty": ((22_363, 12_101, 198_502), (6, 14, 43, 204, 153, 7_162, 128_031)),
    "sports": ((35_598, 18_357, 296_337), (6, 13, 32, 296, 89, 11_416, 187_944)),
    "toys": ((19_412, 11_924, 167_597), (6, 14, 40, 550, 118, 6_579, 106_592)),
}


@pytest.mark.parametrize("name", list(AMAZON))
def test_amazon_statistics_and_length_table(name, cache):
    data = load(name, cache)
    (users, items, actions), (p50, p90, p99, longest, over_50, exactly_5, targets) = AMAZON[name]
    assert (data.n_users, data.n_items, data.n_interactions) == (users, items, actions)
    lengths = data.lengths
    assert np.percentile(lengths, [50, 90, 99]).tolist() == [p50, p90, p99]
    assert (lengths.max(), (lengths > 50).sum(), (lengths == 5).sum()) == (longest, over_50, exactly_5)
    assert lengths.min() >= 5
    split = build_splits(data, max_len=50)
    assert int((split.train.targets > 0).sum()) == targets
    assert data.timestamps is None and not split.has_time


@pytest.mark.parametrize("name", list(AMAZON))
def test_s3rec_ids_come_out_unchanged(name, cache):
    data = load(name, cache)
    path = need_datasets(name) / get_spec(name).interactions.path
    for user, line in enumerate(path.read_text().splitlines(), 1):
        tokens = [int(t) for t in line.split(" ")]
        assert tokens[0] == user
        assert data.sequence(user).tolist() == tokens[1:]
    assert data.provenance["sources"][get_spec(name).interactions.path]["sha256"] == get_spec(name).interactions.sha256


def test_beauty_first_line_and_attributes(cache):
    data = load("beauty", cache)
    assert data.sequence(1).tolist() == [1, 2, 3, 4, 5]
    attributes = data.item_facets["attribute"]
    assert len(attributes) == data.n_items + 1 and attributes[0] == ()
    assert len({a for labels in attributes for a in labels}) == 637  # MANIFEST: 637 attribute ids


def test_sports_user_230(cache):
    """docs/analysis.md §2: valid item 523, test item 2029, last training target 2028."""
    data = load("sports", cache)
    seq = data.sequence(230).tolist()
    assert seq == [1975, 2018, 1447, 2019, 2020, 2021, 518, 2022, 2023, 1411, 2024, 2025, 2026, 509, 2027, 2028,
                   523, 2029]
    split = build_splits(data, max_len=50)
    assert split.test.last_targets[229].item() == 2029 and split.valid.last_targets[229].item() == 523
    assert split.train.targets[229, -1].item() == 2028


def test_ml100k_kcore_timestamps_and_genres(cache):
    root = need_real_data("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.genre")
    before = sorted(p.name for p in (root / "ml-100k").iterdir())
    data = load("ml-100k", cache)
    assert (data.n_users, data.n_items, data.n_interactions) == (943, 1_349, 99_287)
    for user in range(data.n_users):
        assert np.all(np.diff(data.timestamps[data.offsets[user]:data.offsets[user + 1]]) >= 0)
    genres = data.item_facets["genre"]
    assert len(genres) == data.n_items + 1 and all(genres[1:])
    assert data.provenance["row_counts"] == {"raw": 100_000, "kcore": 99_287}
    assert sorted(p.name for p in (root / "ml-100k").iterdir()) == before  # nothing written to the data dir
    split = build_splits(data, max_len=50)
    assert split.has_time and split.train.time_feats.shape == (943, 50, 7)


def test_ml100k_raw_files():
    root = need_real_data("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.genre")
    ratings = read_ml100k_ratings(root / "ml-100k/u.data")
    assert len(ratings) == 100_000
    assert (len(np.unique(ratings.users)), len(np.unique(ratings.items))) == (943, 1_682)
    assert (ratings.timestamps.min(), ratings.timestamps.max()) == (874_724_710, 893_286_638)
    genres = read_ml100k_genres(root / "ml-100k/u.item", root / "ml-100k/u.genre")
    assert len(genres.labels) == 1_682 and all(genres.labels.values())
    assert genres.labels[1] == ("Animation", "Children's", "Comedy")


def test_ml1m_kcore_on_the_derived_pairs():
    """docs/data.md §5: the 10/5-core of ML-1M keeps 6,040 users, 3,416 items, 999,611 interactions."""
    root = need_real_data("ml-1m/derived/ratings_userID_movieID_only.parquet")
    pairs = pd.read_parquet(root / "ml-1m/derived/ratings_userID_movieID_only.parquet")
    users, items = pairs["userID"].to_numpy(), pairs["movieID"].to_numpy()
    assert len(pairs) == 1_000_209
    mask = kcore_mask(users, items, KCore(10, 5))
    assert (len(np.unique(users[mask])), len(np.unique(items[mask])), int(mask.sum())) == (6_040, 3_416, 999_611)
    expected = get_spec("ml-1m").expected
    assert (expected.users, expected.items, expected.interactions) == (6_040, 3_416, 999_611)


def test_ml1m_movie_genres():
    root = need_real_data("ml-1m/movies.dat")
    genres = read_ml1m_genres(root / "ml-1m/movies.dat")
    assert len(genres.labels) == 3_883
    assert len({g for labels in genres.labels.values() for g in labels}) == 18


def test_registry_checksums_agree_with_the_data_folder():
    root = need_real_data("SHA256SUMS")
    sums = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*").removeprefix("./")] = digest
    checked = 0
    for name in ("beauty", "sports", "toys", "ml-100k", "ml-1m"):
        for source in get_spec(name).source_files:
            if source.sha256 is not None:
                assert sums[source.path] == source.sha256, source.path
                checked += 1
    assert checked == 10
