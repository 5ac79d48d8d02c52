"""The case-study explorer of notebook 05: Figure 7 redrawn whenever the dataset, H or user changes (on the
smoke profile, training its FAME runs into a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from seqrec_lib import experiments, explore  # noqa: E402
from seqrec_lib.profiles import get_profile  # noqa: E402

P = get_profile("smoke")


def test_explorer_redraws_on_every_change(tmp_path: Path) -> None:
    root = experiments.runs_root(P, tmp_path)
    ex = explore.CaseStudyExplorer(P, root)
    dataset, user = P.case_study
    assert (ex.case.user, ex.case.n_heads) == (user, P.case_study_heads)
    assert f"user {user}" in ex.figure.get_suptitle() and f"H = {P.case_study_heads}" in ex.figure.get_suptitle()
    assert f"FAME H={P.case_study_heads}" in ex.status.value and ex.user.max == ex.cache[(dataset, 2)].split.n_users

    ex.user.value = 3
    assert ex.case.user == 3 and "user 3" in ex.figure.get_suptitle()

    ex.heads.value = 1                                        # another model: trained, then cached
    assert ex.case.n_heads == 1 and len(ex.cache) == 2 and "FAME H=1" in ex.status.value

    ex.user.value = 10**6                                     # clamped to the dataset's users
    assert ex.case.user == ex.user.max == ex.cache[(dataset, 1)].split.n_users


def test_planted_preferences_only_on_synthetic_data() -> None:
    facet, day, evening = explore.planted_preferences(P, "synthetic", 1)
    assert facet in ("genre", "creator") and day and evening
    assert explore.planted_preferences(P, "beauty", 1) == (None, (), ())


def test_the_explorer_offers_only_published_models_on_the_paper_profile():
    paper = get_profile("paper")
    assert explore.explorer_choices(paper) == (["beauty", "sports"], [2])
    datasets, heads = explore.explorer_choices(get_profile("demo"))
    assert datasets[0] == get_profile("demo").case_study[0] and heads == [1, 2, 4]
