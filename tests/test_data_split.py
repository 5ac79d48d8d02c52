"""The leave-one-out split (docs/protocol.md §1), make_samples padding/truncation, History.mask vs a naive loop,
and the UTC calendar features (docs/data.md §7) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_lib.data.sequences import SequenceData, build_splits, make_samples
from seqrec_lib.data.temporal import CALENDAR_FEATURES, calendar_features

SEQUENCES = [[1, 2, 3, 4, 5], [6, 7, 8, 9], list(range(10, 22))]


def hand_made(with_time: bool = False) -> SequenceData:
    items = np.concatenate([np.asarray(s) for s in SEQUENCES]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in SEQUENCES])]).astype(np.int64)
    timestamps = 1_600_000_000 + 3600 * np.arange(len(items), dtype=np.int64) if with_time else None
    return SequenceData("hand", len(SEQUENCES), 21, offsets, items, timestamps)


def padded(values: list[int], length: int) -> list[int]:
    """The reference: keep the last ``length`` values and pad on the left with 0."""
    values = values[-length:]
    return [0] * (length - len(values)) + values


@pytest.mark.parametrize("max_len", [3, 6, 50])
def test_leave_one_out_split_matches_the_rule(max_len):
    split = build_splits(hand_made(), max_len=max_len)
    for row, s in enumerate(SEQUENCES):
        assert split.train.items[row].tolist() == padded(s[:-3], max_len)
        assert split.train.targets[row].tolist() == padded(s[1:-2], max_len)
        assert split.valid.items[row].tolist() == padded(s[:-2], max_len)
        assert split.valid.targets[row].tolist() == padded(s[1:-1], max_len)
        assert split.test.items[row].tolist() == padded(s[:-1], max_len)
        assert split.test.targets[row].tolist() == padded(s[1:], max_len)
    assert split.valid.last_targets.tolist() == [s[-2] for s in SEQUENCES]
    assert split.test.last_targets.tolist() == [s[-1] for s in SEQUENCES]
    assert split.train.users.tolist() == [1, 2, 3]
    n_targets = sum(min(len(s) - 3, max_len) for s in SEQUENCES)  # all-position training targets
    assert int((split.train.targets > 0).sum()) == n_targets


def test_the_most_recent_item_is_in_the_last_column():
    split = build_splits(hand_made(), max_len=4)
    assert split.test.items[:, -1].tolist() == [4, 8, 20]
    assert split.train.items[2].tolist() == [15, 16, 17, 18]  # left-truncated: s[:-3] = 10..18, last 4


def naive_history_mask(sequences: list[list[int]], users: list[int], cut: int, n_items: int) -> np.ndarray:
    out = np.zeros((len(users), n_items + 1), dtype=bool)
    for row, user in enumerate(users):
        for item in sequences[user - 1][:cut]:
            out[row, item] = True
    return out


@pytest.mark.parametrize("split_name, cut", [("valid", -2), ("test", -1)])
def test_history_mask_matches_a_naive_loop(split_name, cut):
    rng = np.random.default_rng(0)
    sequences = [rng.choice(np.arange(1, 41), size=int(rng.integers(4, 15)), replace=False).tolist() for _ in range(30)]
    items = np.concatenate([np.asarray(s) for s in sequences]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    split = build_splits(SequenceData("rand", 30, 40, offsets, items), max_len=5)
    users = [7, 1, 30, 7, 12]
    mask = split.history(split_name).mask(torch.tensor(users), 40)
    np.testing.assert_array_equal(mask.numpy(), naive_history_mask(sequences, users, cut, 40))
    eval_set = split.eval_set(split_name)
    # the held-out item is never in the history (no repeats here)
    assert not mask[torch.arange(5), eval_set.last_targets[torch.tensor(users) - 1]].any()


def test_split_name_is_checked():
    split = build_splits(hand_made(), max_len=3)
    with pytest.raises(ValueError, match="'valid' or 'test'"):
        split.history("train")


def test_make_samples_padding_truncation_and_time_features():
    data = hand_made(with_time=True)
    feats = calendar_features(data.timestamps)
    batch = make_samples(data, np.array([1, 3]), np.array([2, 9]), max_len=4, time_features=feats)
    assert batch.items.tolist() == [[0, 0, 1, 2], [15, 16, 17, 18]]
    assert batch.targets.tolist() == [[0, 0, 2, 3], [16, 17, 18, 19]]
    assert batch.time_feats.shape == (2, 4, len(CALENDAR_FEATURES))
    assert torch.all(batch.time_feats[0, :2] == 0) and torch.all(batch.target_time_feats[0, :2] == 0)
    np.testing.assert_array_equal(batch.time_feats[0, 2:].numpy(), feats[[0, 1]])
    np.testing.assert_array_equal(batch.target_time_feats[0, 2:].numpy(), feats[[1, 2]])
    third = data.offsets[2]
    np.testing.assert_array_equal(batch.time_feats[1].numpy(), feats[third + 5:third + 9])


def test_make_samples_rejects_ends_outside_the_sequence():
    with pytest.raises(ValueError, match="sample end 5 for user 1 must lie in 1..4"):
        make_samples(hand_made(), np.array([1]), np.array([5]), max_len=3)


def test_build_splits_needs_four_interactions():
    data = SequenceData("short", 2, 5, np.array([0, 4, 7]), np.array([1, 2, 3, 4, 5, 1, 2]))
    with pytest.raises(ValueError, match="user 2 has 3 interactions"):
        build_splits(data)


def test_split_carries_time_features_when_there_are_timestamps():
    assert build_splits(hand_made(with_time=True), max_len=4).has_time
    assert not build_splits(hand_made(), max_len=4).has_time


# ------------------------------------------------------------------------------------- calendar features

def test_calendar_features_by_hand():
    ts = np.array([
        1_577_664_000,  # 2019-12-30 00:00 UTC, Monday; ISO week 1 of 2020
        1_582_977_600,  # 2020-02-29 12:00 UTC, Saturday; day 60; ISO week 9
        1_609_716_600,  # 2021-01-03 23:30 UTC, Sunday; ISO week 53 of 2020
    ])
    expected = np.array([
        # year, month, day, dayofweek (Mon=1), dayofyear, week, hour
        [1, 12, 30, 1, 364, 1, 0],
        [2, 2, 29, 6, 60, 9, 12],
        [3, 1, 3, 7, 3, 53, 23],
    ], dtype=np.float32)
    assert CALENDAR_FEATURES == ("year", "month", "day", "dayofweek", "dayofyear", "week", "hour")
    np.testing.assert_array_equal(calendar_features(ts), expected)
    relative_to_2018 = calendar_features(ts, min_year=2018)[:, 0]
    np.testing.assert_array_equal(relative_to_2018, [2, 3, 4])


def test_calendar_features_empty_and_shape_checks():
    assert calendar_features(np.array([], dtype=np.int64)).shape == (0, 7)
    with pytest.raises(ValueError, match="1-d array"):
        calendar_features(np.zeros((2, 2), dtype=np.int64))
