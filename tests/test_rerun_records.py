"""scripts/rerun_records.py: a re-run's test metrics, best epoch and validation curve against its published record."""

import copy
import json
from pathlib import Path

from tests.helpers import load_script, need_datasets

ROOT = Path(__file__).resolve().parents[1]
RECORD = "sasrec-55d0776c48fd"                       # Toys' SASRec-CE(H = 2), seed 1, committed by toys-fig5


def test_a_rerun_is_compared_with_its_published_record(tmp_path, monkeypatch, capsys):
    need_datasets("toys")                             # the record's name is keyed on the loaded split
    rr = load_script("rerun_records")
    published = json.loads((ROOT / "outputs" / "paper" / "records" / f"{RECORD}.json").read_text())
    rerun = copy.deepcopy(published)
    rerun["metrics"]["test"]["full"]["NDCG@10"] += 0.001
    rerun["best_epoch"] += 2
    metric = published["train_config"]["select_metric"]
    rerun["epoch_log"][3]["valid"][metric] -= 0.0005
    calls = []
    monkeypatch.setattr(rr, "run", lambda spec, profile, folder: calls.append(spec) or rerun)
    out = tmp_path / "rerun.json"
    assert rr.main(["--plan", "toys-fig5", "--label", "SASRec-CE", "--seeds", "1", "--runs", RECORD,
                    "--out", str(out)]) == 0
    assert len(calls) == 1 and calls[0].seed == 1
    row = json.loads(out.read_text())["runs"][0]
    assert row["best_epoch"] == {"published": published["best_epoch"], "rerun": published["best_epoch"] + 2}
    assert abs(row["valid_curve_max_difference"] - 0.0005) < 1e-12
    assert abs(row["rerun"]["full NDCG@10"] - row["published"]["full NDCG@10"] - 0.001) < 1e-12
    assert row["rerun"]["full HR@20"] == row["published"]["full HR@20"]
    printed = capsys.readouterr().out
    assert "validation curve within 5.0e-04" in printed and "difference +1.0e-03" in printed
