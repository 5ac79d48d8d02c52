"""Notebook smoke test: execute every notebook with papermill (through ``seqrec_lib.notebook_runner``, which
rejects parameters a notebook does not declare) in the ``smoke`` profile (in order, into a
temporary outputs folder), then check that every expected figure and result file exists and that the
results are sane. ``01_train`` runs once, with FAME (two-stage training); ``run_all.sh`` runs it per model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest

pytest.importorskip("papermill")

from seqrec_lib import notebook_runner  # noqa: E402
from seqrec_lib.models.registry import get_entry  # noqa: E402
from seqrec_lib.profiles import get_profile  # noqa: E402

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
PROFILE = "smoke"
P = get_profile(PROFILE)
TRAIN_MODEL = "fame"
RUNS = [("00_data", "00_data", {}), ("01_train", f"01_train_{TRAIN_MODEL}", {"model": TRAIN_MODEL}),
        ("02_head_sweep", "02_head_sweep", {}), ("03_expert_sweep", "03_expert_sweep", {}),
        ("04_head_diversity", "04_head_diversity", {}), ("05_case_study", "05_case_study", {}),
        ("06_results", "06_results", {})]

CASE_DATASET, CASE_USER = P.case_study
TIME_DATASET = P.time_datasets[0]
FAME_DATASET = P.fame_datasets[0]
DIVERSITY = [("time", TIME_DATASET), ("facets", FAME_DATASET)]       # notebook 04's comparisons
FIGURES = (["00_sequence_lengths", "00_time_gaps", f"01_learning_curves_{TRAIN_MODEL}_{FAME_DATASET}", "fig5_head_sweep",
            "fig6_expert_sweep", f"fig7_case_study_{CASE_DATASET}_user{CASE_USER}", "06_results_fame",
            "06_results_mojito"]
           + [f"04_{what}_{name}_{dataset}" for name, dataset in DIVERSITY for what in ("head_diversity", "head_distances")]
           + [f"04_attention_maps_{name}_{dataset}_user{CASE_USER if CASE_DATASET == dataset else 1}"
              for name, dataset in DIVERSITY])
TABLES = ["dataset_statistics", "table1_comparison", "timestamp_ties", "mojito_paired", "head_sweep", "best_heads", "expert_sweep",
          "head_diversity", "head_diversity_paired", f"case_study_{CASE_DATASET}_user{CASE_USER}", "table2_fame",
          "table2_fame_beside_paper", "mojito_protocol", "all_runs"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every notebook once; returns the outputs folder (``<tmp>/outputs``)."""
    base = tmp_path_factory.mktemp("notebooks")
    outputs = base / "outputs"
    for notebook, name, extra in RUNS:
        notebook_runner.execute(NOTEBOOK_DIR / f"{notebook}.ipynb", base / f"{name}.ipynb",
                                {"profile": PROFILE, "outputs": str(outputs), **extra}, cwd=NOTEBOOK_DIR)
    return outputs


def _out(executed: Path) -> Path:
    return executed / PROFILE


def _in_unit_interval(values: pd.Series) -> bool:
    return bool(((values >= 0) & (values <= 1)).all())


def test_every_figure_is_written_as_png_and_pdf(executed: Path) -> None:
    figures = _out(executed) / "figures"
    expected = FIGURES + [f"05_facet_alignment_{CASE_DATASET}_{facet}" for facet in ("genre", "creator")]
    for name in expected:
        for ext, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
            path = figures / f"{name}.{ext}"
            assert path.exists(), f"missing figure {path.name}"
            assert path.stat().st_size > 5000 and path.read_bytes()[:4] == magic, f"{path.name} is not a real {ext}"


def test_every_table_is_written_as_csv_and_markdown(executed: Path) -> None:
    results = _out(executed) / "results"
    for name in TABLES:
        for ext in ("csv", "md"):
            assert (results / f"{name}.{ext}").exists(), f"missing result {name}.{ext}"
    assert (results / f"01_train_{TRAIN_MODEL}_{FAME_DATASET}.json").exists()


def test_executed_notebooks_have_no_errors_and_show_figures(executed: Path) -> None:
    for _, name, _ in RUNS:
        nb = nbformat.read(executed.parent / f"{name}.ipynb", as_version=4)
        outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not [o for o in outputs if o.output_type == "error"], f"{name}: an error output"
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images, f"{name}: no figure shown"


def test_table2_has_one_sane_row_per_model_and_dataset(executed: Path) -> None:
    table = pd.read_csv(_out(executed) / "results" / "table2_fame.csv")
    labels = {"SASRec-CE", "FAME w/o MoE", "FAME", "Most popular"} | {get_entry(m).label for m in P.baselines}
    assert len(table) == len(labels) * len(P.fame_datasets)
    assert set(zip(table["dataset"], table["label"])) == {(d, label) for d in P.fame_datasets for label in labels}
    for metric in ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"):
        assert _in_unit_interval(table[metric]), f"{metric} outside [0, 1]"
    assert (table["NDCG@20"] <= table["HR@20"] + 1e-12).all()
    assert "full ranking" in (_out(executed) / "results" / "table2_fame.md").read_text()


def test_mojito_table_has_one_sane_row_per_model_and_dataset(executed: Path) -> None:
    from seqrec_lib.experiments import time_specs

    table = pd.read_csv(_out(executed) / "results" / "mojito_protocol.csv")
    labels = {spec.label for spec in time_specs(P, P.time_datasets[0])}
    assert {"MOJITO", "SASRec-BCE", "SASRec-CE"} <= labels
    assert set(zip(table["dataset"], table["label"])) == {(d, label) for d in P.time_datasets for label in labels}
    assert len(table) == len(labels) * len(P.time_datasets)
    for column in ("sampled NDCG@10", "sampled HR@10", "full NDCG@10", "full HR@10"):
        assert _in_unit_interval(table[column]), f"{column} outside [0, 1]"
    note = (_out(executed) / "results" / "mojito_protocol.md").read_text()
    assert "100 uniform negatives" in note and "not available" in note


def test_sweeps_cover_the_profile_grids(executed: Path) -> None:
    results = _out(executed) / "results"
    heads = pd.read_csv(results / "head_sweep.csv")
    assert sorted(set(heads["heads"])) == sorted(P.heads)
    assert set(heads["label"]) == {"SASRec-CE", "FAME w/o MoE"}
    assert len(heads) == 2 * len(P.heads) * len(P.fame_datasets)
    for column in ("valid NDCG@20", "test NDCG@20", "test HR@20"):
        assert _in_unit_interval(heads[column])
    experts = pd.read_csv(results / "expert_sweep.csv")
    assert sorted(experts["experts"]) == sorted(P.experts)
    best = pd.read_csv(results / "best_heads.csv")
    assert set(best["best_heads"]) <= set(P.heads)


def test_head_diversity_covers_the_time_rows_and_fame(executed: Path) -> None:
    table = pd.read_csv(_out(executed) / "results" / "head_diversity.csv")
    time_rows = table[table["comparison"] == "time"]
    assert set(time_rows["label"]) == {"SASRec-CE", "SASRec-BCE", "MOJITO"} | (
        {"TiSASRec"} if "tisasrec" in P.time_baselines else set())
    assert set(table.loc[table["comparison"] == "facets", "label"]) == {"SASRec-CE", "FAME"}
    assert set(table["n_seeds"]) == {len(P.seeds)}
    assert (table["ci_low"] <= table["mean"] + 1e-12).all() and (table["mean"] <= table["ci_high"] + 1e-12).all()
    assert _in_unit_interval(table.loc[table["quantity"] == "attention_norm", "mean"])


def test_case_study_and_train_record(executed: Path) -> None:
    results = _out(executed) / "results"
    case = pd.read_csv(results / f"case_study_{CASE_DATASET}_user{CASE_USER}.csv")
    heads = case[case["list"].str.startswith("head")]
    assert len(heads) == P.case_study_heads
    assert math.isclose(heads["gate"].sum(), 1.0, rel_tol=1e-5)
    trust = pd.read_csv(results / f"gate_trust_{CASE_DATASET}_H{P.case_study_heads}.csv").set_index("quantity")
    weight = trust.loc["weight of the trusted head"]
    assert 1 / P.case_study_heads <= weight.value <= 1 and weight.n_users == trust.n_users.max() > 0
    assert (trust.ci_low <= trust.value).all() and (trust.value <= trust.ci_high).all()
    record = json.loads((results / f"01_train_{TRAIN_MODEL}_{FAME_DATASET}.json").read_text())
    assert record["label"] == "FAME" and record["epoch_log"]
    for which in ("valid", "test"):
        metrics = record["metrics"][which]["full"]
        assert all(0 <= v <= 1 for k, v in metrics.items() if k != "n_users")
