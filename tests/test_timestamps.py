"""How coarse timestamps are (issue 16): ``data.temporal.timestamp_ties`` and ``gap_table`` on hand-made
sequences with known ties, the ML-100K numbers when its file is there, and the gap figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqrec_lib import plots
from seqrec_lib.data.sequences import SequenceData
from seqrec_lib.data.temporal import GAP_BINS, gap_table, timestamp_ties


def _data() -> SequenceData:
    # user 1: gaps 0, 0, 30 s (test 30 s after validation); user 2: gaps 7200, 0 (test ties validation);
    # user 3: gaps 10 days, 2 h (test 2 h after validation)
    stamps = [[100, 100, 100, 130], [0, 7200, 7200], [0, 864000, 871200]]
    lengths = [len(s) for s in stamps]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.arange(1, sum(lengths) + 1, dtype=np.int64)
    return SequenceData("toy", 3, int(items.max()), offsets, items, np.concatenate(stamps).astype(np.int64))


def test_ties_and_gaps_of_known_sequences() -> None:
    ties = timestamp_ties(_data())
    assert ties["consecutive_ties"] == pytest.approx(3 / 7)            # 7 consecutive pairs, 3 ties
    assert ties["test_ties_valid"] == pytest.approx(1 / 3)              # user 2
    assert ties["test_within_hour"] == pytest.approx(2 / 3)             # users 1 and 2
    assert ties["median_test_gap_s"] == 30
    table = gap_table(_data())
    assert list(table["gap"].unique()) == [name for name, _ in GAP_BINS]
    shares = table.pivot(index="gap", columns="kind", values="count")
    assert shares.loc["same second", "consecutive"] == 3 and shares.loc["1 s – 1 min", "consecutive"] == 1
    assert shares.loc["1 h – 1 day", "consecutive"] == 2 and shares.loc["1 day – 1 week", "consecutive"] == 0
    assert shares.loc["> 1 week", "consecutive"] == 1
    assert dict(shares["validation → test"]) == {"same second": 1, "1 s – 1 min": 1, "1 min – 1 h": 0,
                                                 "1 h – 1 day": 1, "1 day – 1 week": 0, "> 1 week": 0}
    assert table.groupby("kind")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="no timestamps"):
        timestamp_ties(SequenceData("none", 1, 2, np.array([0, 2]), np.array([1, 2])))


@pytest.mark.realdata
def test_ml100k_timestamps_are_coarse(tmp_path) -> None:
    """The statistics of issue 16, measured: 51 % ties, 44 % of test items at the validation item's second."""
    from seqrec_lib.data import load_dataset
    from tests.helpers import need_datasets

    root = need_datasets("ml-100k")
    ties = timestamp_ties(load_dataset("ml-100k", data_dir=root, download=False, cache_dir=tmp_path))
    assert ties["consecutive_ties"] == pytest.approx(0.5085, abs=1e-3)
    assert ties["test_ties_valid"] == pytest.approx(0.4411, abs=1e-3)
    assert ties["test_within_hour"] == pytest.approx(0.9343, abs=1e-3)


def test_time_gaps_figure() -> None:
    fig = plots.time_gaps_figure({"toy": gap_table(_data()), "empty": pd.DataFrame(columns=["kind", "gap", "share"])})
    assert fig.get_suptitle()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["toy", "empty"]
    assert panels[0].get_xlabel() and panels[0].get_ylabel() and fig.legends
    assert len(panels[0].patches) >= 2 * len(GAP_BINS)
