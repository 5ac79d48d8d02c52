"""MOJITO's training windows (docs/data.md §8) and ``build_splits(samples_step=...)``."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_lib.data.sequences import SequenceData, build_splits
from seqrec_lib.data.windows import window_ends


def official_indexes(train_lengths: list[int], step: int, seqlen: int) -> list[tuple[int, int]]:
    """The official ``train_interaction_indexes`` loop, verbatim in spirit."""
    out = []
    for u, n in enumerate(train_lengths, start=1):
        last = n - 1
        out.append((u, last))
        out.extend((u, t) for t in range(last, seqlen - 1, -step))
    return out


def test_hand_made_lengths() -> None:
    # training lengths 10, 51, 171, 300 with step 100, max_len 50
    users, ends = window_ends(np.array([10, 51, 171, 300]), step=100, max_len=50)
    assert users.tolist() == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    assert ends.tolist() == [9,                   # last = 9 < 50: a single window
                             50, 50,              # last = 50 >= 50: the last window twice
                             170, 170, 70,        # 70 >= 50, then -30 stops
                             299, 299, 199, 99]   # the 49 window is not taken (must be >= 50)


def test_dense_step_and_boundaries() -> None:
    users, ends = window_ends(np.array([2, 50, 61]), step=5, max_len=50)
    assert list(zip(users.tolist(), ends.tolist())) == [(1, 1), (2, 49), (3, 60), (3, 60), (3, 55), (3, 50)]


@pytest.mark.parametrize("step", [1, 3, 5, 50, 51, 100, 300])
@pytest.mark.parametrize("max_len", [1, 7, 50])
def test_matches_official_loop(step: int, max_len: int) -> None:
    lengths = np.random.default_rng(step * 100 + max_len).integers(2, 700, size=40)
    users, ends = window_ends(lengths, step, max_len)
    assert list(zip(users.tolist(), ends.tolist())) == official_indexes(lengths.tolist(), step, max_len)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="samples_step"):
        window_ends(np.array([5]), step=0, max_len=50)
    with pytest.raises(ValueError, match="at least 2"):
        window_ends(np.array([5, 1]), step=5, max_len=50)


def make_data(lengths: list[int]) -> SequenceData:
    """User u's sequence is 1000·u + 0, 1, 2, ... mapped to distinct item ids, so positions are readable."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.arange(1, offsets[-1] + 1, dtype=np.int64)          # item id = flat index + 1
    ts = 1_600_000_000 + 3600 * np.arange(offsets[-1], dtype=np.int64)
    return SequenceData("windows", len(lengths), int(offsets[-1]), offsets, items, ts)


def test_build_splits_windows_inputs_and_targets() -> None:
    """Sample t has inputs s_{t-L..t-1} and targets s_{t-L+1..t} over the training part s[:-2]."""
    L, step = 5, 7
    data = make_data([6, 20])            # training lengths 4 and 18: last = 3 and 17
    split = build_splits(data, max_len=L, samples_step=step)
    users, ends = window_ends(data.lengths - 2, step, L)
    assert ends.tolist() == [3, 17, 17, 10]
    assert split.train.users.tolist() == users.tolist()
    for k, (u, t) in enumerate(zip(users, ends)):
        s = data.sequence(int(u))
        want_in = [int(s[i]) if i >= 0 else 0 for i in range(t - L, t)]
        want_tg = [int(s[i + 1]) if i >= 0 else 0 for i in range(t - L, t)]   # only beside a real input
        assert split.train.items[k].tolist() == want_in
        assert split.train.targets[k].tolist() == want_tg
    # the last window's target is the last training item (never the validation item s[-2])
    assert split.train.targets[1, -1].item() == data.sequence(2)[-3]
    # calendar features follow the items (zeros at padding)
    assert (split.train.time_feats[0, 0] == 0).all() and (split.train.time_feats[0, -1] > 0).any()
    assert split.valid.items.tolist() == build_splits(data, max_len=L).valid.items.tolist()


def test_gaps_when_step_exceeds_window() -> None:
    L, step = 5, 8
    data = make_data([24])               # training length 22, last = 21 → windows 21, 21, 13, 5
    split = build_splits(data, max_len=L, samples_step=step)
    s = data.sequence(1).tolist()
    targets = {int(v) for v in split.train.targets.flatten() if v > 0}
    covered = {s.index(v) for v in targets}
    assert covered == set(range(1, 6)) | set(range(9, 14)) | set(range(17, 22))
    assert not covered & {6, 7, 8, 14, 15, 16}    # transitions between windows are never targets


def test_default_is_one_all_positions_sample() -> None:
    data = make_data([6, 20])
    a, b = build_splits(data, max_len=5), build_splits(data, max_len=5, samples_step=None)
    assert a.train.items.tolist() == b.train.items.tolist() and len(a.train) == 2
    assert a.train.targets[:, -1].tolist() == [int(data.sequence(1)[-3]), int(data.sequence(2)[-3])]
