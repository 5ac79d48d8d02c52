"""docs/results.md and README's headline tables are generated from the committed records: they are current, and
they follow the records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from seqrec_lib import results_doc

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "outputs" / "paper"


def test_docs_results_and_readme_are_current() -> None:
    """What ``python scripts/publish_paper.py`` would write equals what is committed."""
    for path, text in results_doc.generated(PAPER, ROOT).items():
        assert path.read_text() == text, (f"{path.relative_to(ROOT)} is stale against outputs/paper/: run "
                                          "`python scripts/publish_paper.py` and commit the result")


def _copy_of_paper(tmp_path: Path) -> Path:
    paper = tmp_path / "outputs" / "paper"
    shutil.copytree(PAPER / "records", paper / "records")
    shutil.copytree(PAPER / "results", paper / "results")
    (tmp_path / "README.md").write_text(f"intro\n{results_doc.BEGIN}\nold\n{results_doc.END}\nrest\n")
    return paper


def test_the_page_follows_the_records(tmp_path: Path) -> None:
    """Changing one Table-2 record's test metric changes the Beauty table and the FAME − SASRec-CE sentence."""
    paper = _copy_of_paper(tmp_path)
    units = pd.read_csv(paper / "results" / "plan_units.csv")
    fame = units[(units["plan"] == "beauty-table2") & (units["label"] == "FAME") & (units["seed"] == 1)]
    path = paper / "records" / f"{fame['record'].iloc[0]}.json"
    before = results_doc.generated(paper, tmp_path)[tmp_path / "docs" / "results.md"]
    record = json.loads(path.read_text())
    record["metrics"]["test"]["full"]["NDCG@10"] += 0.003
    path.write_text(json.dumps(record))
    after = results_doc.generated(paper, tmp_path)
    page = after[tmp_path / "docs" / "results.md"]
    assert page != before
    changed = [line for line in page.splitlines() if line.startswith("- FAME − SASRec-CE")][0]
    assert changed not in before
    readme = after[tmp_path / "README.md"]
    assert readme.startswith("intro\n" + results_doc.BEGIN) and readme.endswith(results_doc.END + "\nrest\n")
    assert "old" not in readme and "| Beauty | FAME | 3 |" in readme


def test_ranges_come_from_unrounded_values() -> None:
    """The Fig. 6 sentence's range of gains over the pretraining is computed from the records, not from rounded
    table cells: recompute it here from the records directly."""
    records = results_doc.load_records(PAPER / "records")
    units = pd.read_csv(PAPER / "results" / "plan_units.csv")
    stems = set(units.loc[units["plan"] == "beauty-fig6", "record"])
    fig6 = [r for r in records if Path(r["record_file"]).stem in stems]
    heads = fig6[0]["model_config"]["n_heads"]
    fig5 = set(units.loc[units["plan"] == "beauty-fig5", "record"])
    pre = [r for r in records if Path(r["record_file"]).stem in fig5 and r["label"] == "SASRec-CE"
           and r["model_config"]["n_heads"] == heads][0]
    base = pre["metrics"]["test"]["full"]["NDCG@20"]
    gains = [r["metrics"]["test"]["full"]["NDCG@20"] - base for r in fig6]
    page = (ROOT / "docs" / "results.md").read_text()
    assert (f"{min(gains):+.4f} to {max(gains):+.4f} test NDCG@20" in page and
            f"({100 * min(gains) / base:+.1f} % to {100 * max(gains) / base:+.1f} %)" in page)


def test_readme_without_the_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="results:begin"):
        results_doc.replace_block("no markers here\n", "block")
