"""FAME's two-stage training (docs/fame.md §8): pretrain SASRec-CE with the same backbone and H, then build
FAME from its best checkpoint and fine-tune end to end.

Runs live in ``runs_root/<model>-<hash>/``, the hash covering everything that changes a result (data,
model config, training config except device/progress/checkpointing, protocols; ``train.run_key``). A pretrained SASRec whose
``result.json`` and ``best.pt`` exist is reused, so a sweep over N (or over FAME's flags) pretrains once
per (H, backbone, seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data.sequences import SplitData
from .evaluation import EvalProtocol
from .models.fame import Fame, FameConfig
from .models.sasrec import SASRecConfig
from .records import load_torch_file, read_json_file
from .train import TrainConfig, run_key, train_and_evaluate


def run_dir_for(runs_root: Path, model_name: str, model_config: FameConfig | SASRecConfig, split: SplitData,
                train_config: TrainConfig, protocols: tuple[EvalProtocol, ...]) -> Path:
    """``runs_root/<model_name>-<run key>`` for one configuration of one run."""
    return Path(runs_root) / f"{model_name}-{run_key(model_name, model_config, split, train_config, protocols)}"


def train_fame_two_stage(split: SplitData, fame_config: FameConfig, train_config: TrainConfig, runs_root: Path,
                         protocols: tuple[EvalProtocol, ...] = (EvalProtocol(),),
                         data_provenance: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pretrain (or reuse) SASRec-CE, then fine-tune FAME from its best weights; returns both records.

    The FAME record's ``pretrained`` names the SASRec run (``run_id``, ``run_dir``, ``checkpoint``) and
    whether it was reused from an earlier call.
    """
    sasrec_config = fame_config.sasrec_config()
    sasrec_dir = run_dir_for(runs_root, "sasrec", sasrec_config, split, train_config, protocols)
    result, checkpoint = sasrec_dir / "result.json", sasrec_dir / "best.pt"
    reused = result.exists() and checkpoint.exists()
    remedy = f"delete {sasrec_dir} to pretrain SASRec again"
    if reused:
        sasrec_record = read_json_file(result, remedy)
    else:
        _, sasrec_record = train_and_evaluate("sasrec", split, sasrec_config, train_config, protocols, sasrec_dir,
                                              data_provenance)
    if not checkpoint.exists():
        raise FileNotFoundError(f"SASRec pretraining wrote no {checkpoint} (train_config.epochs = 0?)")
    weights = load_torch_file(checkpoint, remedy, map_location="cpu", weights_only=True)

    def initialise(model: Fame) -> None:
        model.load_pretrained(weights)

    pretrained = {"model": "sasrec", "run_id": sasrec_record["run_id"], "run_dir": str(sasrec_dir),
                  "checkpoint": str(checkpoint), "reused": reused}
    fame_dir = run_dir_for(runs_root, "fame", fame_config, split, train_config, protocols)
    _, fame_record = train_and_evaluate("fame", split, fame_config, train_config, protocols, fame_dir,
                                        data_provenance, initialise=initialise, extra={"pretrained": pretrained})
    return sasrec_record, fame_record
