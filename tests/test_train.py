import json

import pytest
import torch

from seqrec_lib.evaluation import EvalProtocol, evaluate
from seqrec_lib.models.sasrec import SASRecConfig
from seqrec_lib.train import TrainConfig, Trainer, train_and_evaluate
from tests.helpers import tiny_split

SMALL = SASRecConfig(d=16, n_heads=2, max_len=10, attn_dropout=0.2, hidden_dropout=0.2)


def fit(epochs=3, run_dir=None, seed=1, model_config=SMALL, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=16, seed=seed, progress=False, device="cpu", **kw)
    return train_and_evaluate("sasrec", tiny_split(), model_config, cfg, run_dir=run_dir)


def test_same_seed_gives_identical_metrics_and_weights():
    m1, r1 = fit()
    m2, r2 = fit()
    assert r1["metrics"] == r2["metrics"]
    assert [e["loss"] for e in r1["epoch_log"]] == [e["loss"] for e in r2["epoch_log"]]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    _, r3 = fit(seed=2)
    assert [e["loss"] for e in r3["epoch_log"]] != [e["loss"] for e in r1["epoch_log"]]


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    _, straight = fit(epochs=4, run_dir=tmp_path / "a")
    fit(epochs=2, run_dir=tmp_path / "b")                 # "cut off" after 2 epochs
    _, resumed = fit(epochs=4, run_dir=tmp_path / "b")    # continues from last.pt
    assert [e["loss"] for e in resumed["epoch_log"]] == [e["loss"] for e in straight["epoch_log"]]
    assert resumed["metrics"] == straight["metrics"]
    assert (tmp_path / "b" / "best.pt").exists()


def test_early_stopping_and_best_weights_restored():
    # lr=0: validation never improves after the first epoch, so patience 2 stops after 3 epochs
    model, record = fit(epochs=50, patience=2, lr=0.0)
    assert record["epochs_run"] == 3 and record["stopped_early"] and record["best_epoch"] == 1
    model2, rec2 = fit(epochs=6)
    best = max(e["valid"]["NDCG@20"] for e in rec2["epoch_log"])
    assert rec2["metrics"]["valid"]["full"]["NDCG@20"] == pytest.approx(best)
    assert evaluate(model2, tiny_split(), "valid", EvalProtocol())["NDCG@20"] == pytest.approx(best)


def test_record_has_config_protocol_timings_and_provenance(tmp_path):
    _, record = fit(epochs=2, run_dir=tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved == json.loads(json.dumps(record))
    for key in ("run_id", "model_config", "train_config", "protocol", "metrics", "epoch_log", "timings",
                "seed", "provenance", "data"):
        assert key in saved, key
    assert saved["model_config"]["n_heads"] == 2 and saved["seed"] == 1
    assert set(saved["metrics"]) == {"valid", "test"}
    assert "HR@10" in saved["metrics"]["test"]["full"]
    assert "history" in saved["protocol"]["evaluation"][0]["text"]
    assert set(saved["provenance"]["versions"]) >= {"torch", "numpy"}
    assert saved["provenance"]["device"] == "cpu"
    assert saved["timings"]["train_seconds_per_epoch_median"] > 0


def test_bce_training_gets_negatives_outside_the_training_set():
    cfg = SASRecConfig(d=16, max_len=10, loss="bce")
    _, record = fit(epochs=2, model_config=cfg)
    assert all(e["loss"] > 0 for e in record["epoch_log"])


def test_most_popular_is_evaluated_without_training():
    cfg = TrainConfig(epochs=5, progress=False, device="cpu")
    _, record = train_and_evaluate("pop", tiny_split(), None, cfg)
    assert record["epochs_run"] == 0 and 0 <= record["metrics"]["test"]["full"]["HR@20"] <= 1


def test_trainer_rejects_duplicate_protocols():
    with pytest.raises(ValueError, match="differ"):
        Trainer(TrainConfig(), (EvalProtocol(), EvalProtocol()))
