import json
import signal
from pathlib import Path

import pytest
import torch

import seqrec_lib.train as train_module
from seqrec_lib.evaluation import EvalProtocol, evaluate
from seqrec_lib.models.sasrec import SASRecConfig
from seqrec_lib.train import TrainConfig, Trainer, TrainingInterrupted, train_and_evaluate
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


# ----------------------------------------------------------------------------- checkpoints and signals


def _signal_at_epoch(monkeypatch, epoch: int, signum: int = signal.SIGINT) -> None:
    """Deliver ``signum`` to this process in the middle of training epoch ``epoch`` (0-based)."""
    original = Trainer._train_epoch

    def train_epoch(self, model, split, optimizer, index):
        loss = original(self, model, split, optimizer, index)
        if index == epoch:
            signal.raise_signal(signum)
        return loss

    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_with_every_finished_epoch_saved(tmp_path, monkeypatch, signum):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)   # e.g. Ray's, if it ran earlier
    _signal_at_epoch(monkeypatch, 2, signum)
    with pytest.raises(TrainingInterrupted) as excinfo:
        fit(epochs=5, run_dir=tmp_path)
    stop = excinfo.value
    assert isinstance(stop, KeyboardInterrupt) and stop.signum == signum
    assert stop.checkpoint == tmp_path / "last.pt" and stop.epochs_saved == 2
    assert signal.Signals(signum).name in str(stop) and "2 finished epoch(s)" in str(stop)
    assert torch.load(tmp_path / "last.pt", weights_only=False)["state"]["epoch"] == 2
    assert not (tmp_path / "result.json").exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before   # handlers restored


def test_after_a_signal_the_run_resumes_where_it_stopped_and_says_so(tmp_path, monkeypatch, capsys):
    _, straight = fit(epochs=4, run_dir=tmp_path / "a")
    with monkeypatch.context() as patch:
        _signal_at_epoch(patch, 1)
        with pytest.raises(TrainingInterrupted):
            fit(epochs=4, run_dir=tmp_path / "b")
    capsys.readouterr()
    _, resumed = fit(epochs=4, run_dir=tmp_path / "b")
    out = capsys.readouterr().out
    assert f"Resuming {tmp_path / 'b' / 'last.pt'}: 1 of 4 epochs done" in out and "continuing with epoch 2" in out
    assert [e["loss"] for e in resumed["epoch_log"]] == [e["loss"] for e in straight["epoch_log"]]
    assert resumed["metrics"] == straight["metrics"]


def test_a_signal_while_a_checkpoint_is_written_waits_for_it(tmp_path, monkeypatch):
    real_save = train_module.save_torch_atomic

    def save_during_signal(obj, path):
        if Path(path).name == "last.pt" and obj["state"]["epoch"] == 2:
            signal.raise_signal(signal.SIGTERM)  # arrives mid-write: the write must finish first
        real_save(obj, path)

    monkeypatch.setattr(train_module, "save_torch_atomic", save_during_signal)
    with pytest.raises(TrainingInterrupted) as excinfo:
        fit(epochs=5, run_dir=tmp_path)
    assert excinfo.value.epochs_saved == 2
    assert torch.load(tmp_path / "last.pt", weights_only=False)["state"]["epoch"] == 2


def test_without_a_run_folder_a_signal_says_nothing_was_saved(monkeypatch):
    _signal_at_epoch(monkeypatch, 0)
    with pytest.raises(TrainingInterrupted, match="no folder, so nothing was saved") as excinfo:
        fit(epochs=3)
    assert excinfo.value.checkpoint is None


# ----- the optimiser of a model's config (issue 16) -----------------------------------------------------------

def _adam_of(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=False)["optimizer"]["param_groups"][0]


def test_the_optimiser_takes_the_betas_of_the_model_config(tmp_path):
    import dataclasses

    _, default = fit(epochs=1, run_dir=tmp_path / "a")
    assert _adam_of(tmp_path / "a")["betas"] == (0.9, 0.999)                 # torch's, SASRec-CE's default
    assert default["optimizer"] == {"name": "Adam", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}
    official = dataclasses.replace(SMALL, loss="bce", adam_beta2=0.98)
    _, record = fit(epochs=1, run_dir=tmp_path / "b", model_config=official, weight_decay=1e-4)
    assert _adam_of(tmp_path / "b")["betas"] == (0.9, 0.98) and _adam_of(tmp_path / "b")["weight_decay"] == 1e-4
    assert record["optimizer"]["betas"] == [0.9, 0.98] and record["model_config"]["adam_beta2"] == 0.98
    with pytest.raises(ValueError, match="betas"):
        SASRecConfig(adam_beta2=1.0)


def test_late_optimiser_fields_keep_the_run_keys_of_default_configs():
    """SASRec-CE and FAME at the default β's hash as before the fields existed; other β's change the key;
    MOJITO's official β2 = 0.98 is part of its key (its records were made with torch's 0.999)."""
    import dataclasses
    import hashlib

    from seqrec_lib.models.fame import FameConfig
    from seqrec_lib.models.mojito import MojitoConfig
    from seqrec_lib.records import config_hash, to_jsonable

    def old_hash(config, drop=("adam_beta1", "adam_beta2")):
        view = {k: v for k, v in to_jsonable(config).items() if k not in drop}
        return hashlib.sha256(json.dumps(view, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]

    for config in (SASRecConfig(), SMALL, FameConfig(), FameConfig(n_heads=4, n_experts=1), FameConfig().sasrec_config()):
        assert config_hash(config) == old_hash(config)
        assert config_hash(dataclasses.replace(config, adam_beta2=0.98)) != old_hash(config)
    split, train, protocols = tiny_split(), TrainConfig(), (EvalProtocol(),)
    assert (train_module.run_key("sasrec", SMALL, split, train, protocols)
            == train_module.run_key("sasrec", dataclasses.replace(SMALL, adam_beta1=0.9), split, train, protocols)
            != train_module.run_key("sasrec", dataclasses.replace(SMALL, adam_beta2=0.98), split, train, protocols))
    mojito = MojitoConfig()
    assert (mojito.adam_beta1, mojito.adam_beta2) == (0.9, 0.98)
    assert config_hash(mojito) != old_hash(mojito)
