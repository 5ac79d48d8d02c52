"""The synthetic data is learnable: SASRec-CE beats most-popular by a wide margin (issue: foundation)."""

import pytest
import json

from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.sasrec import SASRecConfig
from seqrec_lib.train import TrainConfig, main, torch_threads, train_and_evaluate


@pytest.mark.slow
def test_sasrec_beats_most_popular_on_synthetic_data():
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=25, patience=5, batch_size=64, lr=3e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        config = SASRecConfig(d=32, n_heads=2, max_len=20, attn_dropout=0.2, hidden_dropout=0.2)
        _, sasrec = train_and_evaluate("sasrec", split, config, train)
    p, s = pop["metrics"]["test"]["full"], sasrec["metrics"]["test"]["full"]
    assert s["NDCG@10"] > 2.5 * p["NDCG@10"], (s, p)
    assert s["HR@10"] > p["HR@10"] + 0.1, (s, p)


def test_command_line_trains_and_writes_a_record(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["--model", "sasrec", "--dataset", "synthetic", "--epochs", "1", "--d", "16", "--n-heads", "4",
                 "--max-len", "20", "--device", "cpu", "--progress", "false", "--out", str(tmp_path / "run")])
    assert code == 0
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["model_config"]["n_heads"] == 4 and record["model_config"]["d"] == 16
    assert record["epochs_run"] == 1 and record["dataset"] == "synthetic"
    assert "test  [full] HR@5=" in capsys.readouterr().out
