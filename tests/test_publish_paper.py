"""scripts/publish_paper.py: tables and curves from published records, nothing trained, bad files named."""

import json
import shutil
from pathlib import Path

import pytest

import seqrec_lib.experiments as ex
from seqrec_lib.profiles import get_profile
from tests.helpers import load_script, need_datasets

ROOT = Path(__file__).resolve().parents[1]

SMOKE = get_profile("smoke")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    specs = ex.time_specs(SMOKE, "synthetic")[:2]
    records = ex.run_many(specs, SMOKE, out / "runs")
    for record in records:
        folder = Path(record["run_dir"])
        (out / "records").mkdir(exist_ok=True)
        shutil.copyfile(folder / "result.json", ex.published_record(folder))
    return out, records


def test_runs_table_has_each_record_and_its_test_metrics(published):
    out, records = published
    pp = load_script("publish_paper")
    loaded = pp.load_records(out / "records")
    table = pp.runs_table(loaded, ex.results_frame(loaded))
    assert len(table) == len(records)
    for record in records:
        row = table[table["record"] == f"{Path(record['run_dir']).name}.json"].iloc[0]
        assert row["full NDCG@10"] == pytest.approx(record["metrics"]["test"]["full"]["NDCG@10"])
        assert row["sampled HR@10"] == pytest.approx(record["metrics"]["test"]["sampled"]["HR@10"])
        assert row["best / run"] == f"{record['best_epoch']} / {record['epochs_run']}"
        assert row["commit"] == (record["provenance"]["git_commit"] or "")[:7]


def test_a_file_that_is_not_a_record_is_named(tmp_path):
    (tmp_path / "broken.json").write_text(json.dumps({"model": "sasrec"}))
    with pytest.raises(ValueError, match="broken.json: not a run record"):
        load_script("publish_paper").load_records(tmp_path)


@pytest.mark.realdata
def test_main_writes_tables_curves_and_status(published):
    need_datasets("beauty", "toys", "sports", "ml-100k")         # the status page lists every plan's units
    out, records = published
    docs = {path: path.read_text() for path in (ROOT / "README.md", ROOT / "docs" / "results.md")}
    assert load_script("publish_paper").main(["--out", str(out)]) == 0
    assert {path: path.read_text() for path in docs} == docs    # the repository's docs follow outputs/paper only
    assert (out / "results" / "runs.md").read_text().count("\n|") >= len(records) + 1
    for dataset in {record["dataset"] for record in records}:
        assert (out / "figures" / "curves" / f"curves_{dataset}.png").exists()
    status = (out / "results" / "status.md").read_text()
    assert "## beauty-sasrec:" in status and "## ml100k-mojito:" in status


def test_table2_so_far_puts_each_run_beside_the_papers_row_of_the_same_model(published):
    from seqrec_lib import paper_results

    out, _ = published
    pp = load_script("publish_paper")
    loaded = pp.load_records(out / "records")
    assert pp.table2_so_far(loaded, ex.results_frame(loaded)).empty          # synthetic: not a Table-2 dataset
    as_beauty = [{**r, "dataset": "beauty", "label": label} for r, label in zip(loaded, ("SASRec-CE", "MOJITO"))]
    table = pp.table2_so_far(as_beauty, ex.results_frame(as_beauty))
    sasrec = table.loc[("beauty", f"SASRec-CE ({pp._settings_text(as_beauty[0])})")]
    test = as_beauty[0]["metrics"]["test"]["full"]
    assert sasrec["NDCG@10"] == f"{test['NDCG@10']:.4f}" and sasrec["seeds"] == "1"
    paper = paper_results.paper_row("SASRec", "beauty")
    assert sasrec["paper NDCG@10"] == f"{paper['NDCG@10']:.4f}"
    assert sasrec["ours / paper HR@10"] == f"{test['HR@10'] / paper['HR@10']:.0%}"
    mojito = table.loc[("beauty", f"MOJITO ({pp._settings_text(as_beauty[1])})")]
    assert mojito["paper NDCG@10"] == ""                                      # not in Table 2
    fame = table.loc[("beauty", "FAME (FAME paper, Table 2)")]
    assert fame["NDCG@10"] == f"{paper_results.paper_row('FAME', 'beauty')['NDCG@10']:.4f}"


def test_table2_so_far_keeps_runs_that_differ_in_fame_choices_apart(published):
    """Step 3's four FAME w/o MoE runs differ only in wf_init / attn_residual: four rows, not one mean of four."""
    out, _ = published
    pp = load_script("publish_paper")
    base = pp.load_records(out / "records")[0]
    runs = [{**base, "dataset": "beauty", "label": "FAME w/o MoE", "run_id": f"{w}-{r}",
             "model_config": {**base["model_config"], "n_experts": 1, "wf_init": w, "attn_residual": r}}
            for w in ("block_selector", "random") for r in ("slice", "none")]
    table = pp.table2_so_far(runs, ex.results_frame(runs))
    rows = [row for _, row in table.index if row.startswith("FAME w/o MoE")]
    assert len(rows) == 4 and all("W_f " in row and "residual " in row for row in rows), rows
    assert set(table.loc[[("beauty", row) for row in rows], "seeds"]) == {"1"}


def test_table2_paired_pairs_fame_with_each_row_by_seed_over_the_table2_runs_only(published):
    out, _ = published
    pp = load_script("publish_paper")
    base = pp.load_records(out / "records")[0]
    full = base["metrics"]["test"]["full"]

    def run(label, seed, ndcg, stem):
        metrics = {**base["metrics"], "test": {**base["metrics"]["test"], "full": {**full, "NDCG@10": ndcg}}}
        return {**base, "dataset": "beauty", "label": label, "seed": seed, "metrics": metrics,
                "record_file": f"{stem}.json", "run_id": stem}

    fame, sasrec = [0.060, 0.058, 0.061], [0.058, 0.059, 0.057]
    runs = ([run("FAME", s, v, f"fame-{s}") for s, v in zip((1, 2, 3), fame)]
            + [run("SASRec-CE", s, v, f"sasrec-{s}") for s, v in zip((1, 2, 3), sasrec)]
            + [run("SASRec-CE", 1, 0.5, "sasrec-fig5")])                    # a Fig. 5 run: not a Table-2 unit
    stems = {f"{m}-{s}" for m in ("fame", "sasrec") for s in (1, 2, 3)}
    pairs = pp.table2_paired(runs, ex.results_frame(runs), stems)
    row = pairs.loc[("beauty", "SASRec-CE", "full", "NDCG@10")]
    diffs = [f - s for f, s in zip(fame, sasrec)]
    assert row["pairs"] == 3 and row["ahead"] == 2
    assert row["mean_diff"] == pytest.approx(sum(diffs) / 3)
    assert pp.table2_paired(runs[3:], ex.results_frame(runs[3:]), stems).empty     # no FAME row yet
