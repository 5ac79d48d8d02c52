import dataclasses
import json
from pathlib import Path

import torch

from seqrec_lib.evaluation import EvalProtocol
from seqrec_lib.models.fame import Fame, FameConfig
from seqrec_lib.train import TrainConfig
from seqrec_lib.two_stage import run_dir_for, train_fame_two_stage
from tests.helpers import tiny_split

FAME = FameConfig(d=16, n_heads=2, n_experts=2, max_len=10, attn_dropout=0.2, hidden_dropout=0.2)
TRAIN = TrainConfig(epochs=2, batch_size=16, seed=3, device="cpu", progress=False)


def test_pretrained_sasrec_is_reused_across_expert_counts(tmp_path):
    split = tiny_split()
    sasrec, fame = train_fame_two_stage(split, FAME, TRAIN, tmp_path)
    sasrec_dir = Path(fame["pretrained"]["run_dir"])
    assert sasrec_dir.parent == tmp_path and sasrec_dir.name.startswith("sasrec-") and (sasrec_dir / "best.pt").exists()
    assert fame["pretrained"]["run_id"] == sasrec["run_id"] and not fame["pretrained"]["reused"]
    assert sasrec["model"] == "sasrec" and sasrec["model_config"]["n_heads"] == 2
    assert sasrec["model_config"]["loss"] == "ce" and sasrec["seed"] == fame["seed"] == 3
    stamps = {p: p.stat().st_mtime_ns for p in (sasrec_dir / "result.json", sasrec_dir / "best.pt")}

    sasrec2, fame2 = train_fame_two_stage(split, dataclasses.replace(FAME, n_experts=1), TRAIN, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "the pretrained SASRec was retrained"
    assert fame2["pretrained"]["reused"] and fame2["pretrained"]["run_id"] == sasrec["run_id"]
    assert fame2["pretrained"]["run_dir"] == fame["pretrained"]["run_dir"]
    assert sasrec2 == sasrec
    assert fame2["model_config"]["n_experts"] == 1
    fame_dirs = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("fame-"))
    assert len(fame_dirs) == 2
    for name in fame_dirs:
        saved = json.loads((tmp_path / name / "result.json").read_text())
        assert saved["pretrained"]["run_id"] == sasrec["run_id"]


def test_fame_starts_from_the_pretrained_checkpoint(tmp_path, monkeypatch):
    """The weights FAME is fine-tuned from are the SASRec's best.pt (checked just after ``initialise``)."""
    import seqrec_lib.train as train_module

    seen = {}
    real_fit = train_module.Trainer.fit

    def spy(self, model, split, run_dir=None):
        if isinstance(model, Fame):
            seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return real_fit(self, model, split, run_dir)

    monkeypatch.setattr(train_module.Trainer, "fit", spy)
    _, fame = train_fame_two_stage(tiny_split(), FAME, dataclasses.replace(TRAIN, epochs=1), tmp_path)
    best = torch.load(fame["pretrained"]["checkpoint"], weights_only=True)
    assert torch.equal(seen["encoder.embedding.item.weight"], best["encoder.embedding.item.weight"])
    assert torch.equal(seen["encoder.blocks.0.ffn.fc1.weight"], best["encoder.blocks.0.ffn.fc1.weight"])
    assert torch.equal(seen["moe.key.weight"], best["encoder.blocks.1.attention.key.weight"])
    assert torch.equal(seen["moe.value.bias"], best["encoder.blocks.1.attention.value.bias"])


def test_run_dirs_hash_what_changes_the_result(tmp_path):
    split = tiny_split()
    protocols = (EvalProtocol(),)

    def key(split=split, model=FAME, train=TRAIN, protocols=protocols):
        return run_dir_for(tmp_path, "fame", model, split, train, protocols).name

    base = key()
    assert key(train=dataclasses.replace(TRAIN, device="cuda", progress=True)) == base
    for changed in (key(split=tiny_split(seed=1)), key(split=tiny_split(max_len=8)),
                    key(model=dataclasses.replace(FAME, n_experts=4)), key(train=dataclasses.replace(TRAIN, seed=4)),
                    key(protocols=(EvalProtocol(history_mask="0"),))):
        assert changed != base
