"""Training: Adam, early stopping on a validation metric, best checkpoint restored for test, fixed
seeds, resumable checkpoints, and one JSON record per run. Knows the model interface, not the models.

Command line: ``python -m seqrec_lib.train --model sasrec --dataset beauty --epochs 5``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import re
import signal
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal, NoReturn, get_args, get_origin, get_type_hints

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .batch import Batch
from .blas import fast_path_or_reexec
from .data.sequences import SplitData, data_fingerprint
from .evaluation import EvalProtocol, evaluate
from .models.base import SequentialModel
from .records import (LATE_FIELD, CorruptFileError, config_hash, key_view, load_torch_file, provenance,
                      save_torch_atomic, temp_file_beside, to_jsonable, write_json_atomic)
from .sampling import sample_negatives

BATCH_BAR_MIN_STEPS = 50  # a per-batch progress bar only for epochs this long (short ones just bloat logs)
SPLIT_DESCRIPTION = ("leave-one-out: train input s[:-3] with a target at every position, valid input s[:-2] "
                     "→ s[-2], test input s[:-1] → s[-1]; left-padded to max_len")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and model selection (docs/protocol.md §4: Adam 1e-3, batch 256, NDCG@20, patience 40).

    ``precision``: 'bf16' runs the training forward/backward under bf16 autocast (the fused CE's matmuls in
    bf16, its softmax and loss in fp32); evaluation stays fp32. ``compile``: ``torch.compile`` the training
    loss (fused kernels round differently, so it is part of the run key). Both are off by default: the default is
    the exact fp32 path, and neither pays everywhere. bf16 depends on the CPU: ~7x slower on a 2-core AVX2 AMD EPYC
    without native bf16, 1.36x faster (SASRec-CE on Beauty, 1 thread, contended) on an AVX-512 one with
    ``avx512_bf16`` (records name the CPU: ``records.cpu_model``); compile recompiles for every new batch shape
    (first epoch of a tiny run 462 s against 0.3 s eager).
    """

    epochs: int = 300
    patience: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 42
    device: str = "auto"
    select_metric: str = "NDCG@20"
    progress: bool = True
    precision: Literal["fp32", "bf16"] = field(default="fp32", metadata=LATE_FIELD)
    compile: bool = field(default=False, metadata=LATE_FIELD)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"TrainConfig.precision must be 'fp32' or 'bf16', got {self.precision!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < (0 if name == "epochs" else 1):
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if self.patience < 1:
            raise ValueError(f"TrainConfig.patience must be at least 1, got {self.patience}")
        # lr 0 stays allowed here (frozen weights: a control the tests use); the command line refuses it
        for name in ("lr", "weight_decay"):
            if not getattr(self, name) >= 0:       # NaN too
                raise ValueError(f"TrainConfig.{name} must be at least 0, got {getattr(self, name)}")
        if not _METRIC_NAME.fullmatch(str(self.select_metric)):
            raise ValueError(f"TrainConfig.select_metric must be HR@k or NDCG@k (k an evaluated cutoff) or MRR, "
                             f"got {self.select_metric!r}")


_METRIC_NAME = re.compile(r"(HR|NDCG)@[1-9][0-9]*|MRR")


def evaluated_metrics(protocol: EvalProtocol) -> list[str]:
    """The metric names ``evaluate`` reports under ``protocol``: HR@k, NDCG@k for each of its cutoffs, MRR."""
    return [f"HR@{k}" for k in protocol.ks] + [f"NDCG@{k}" for k in protocol.ks] + ["MRR"]


def check_select_metric(config: TrainConfig, protocol: EvalProtocol) -> None:
    """ValueError unless ``config.select_metric`` is one the selection protocol evaluates."""
    known = evaluated_metrics(protocol)
    if config.select_metric not in known:
        raise ValueError(f"select_metric {config.select_metric!r} is not evaluated; the selection protocol "
                         f"computes {', '.join(known)}")


@dataclass
class TrainState:
    """Everything needed to continue an interrupted run exactly where it stopped."""

    epoch: int = 0
    best_score: float = -float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0   # wall-clock seconds of the earlier sessions, each up to its last checkpoint

    def finished(self, config: TrainConfig) -> bool:
        """True when the epoch budget or the patience is used up."""
        return self.epoch >= config.epochs or self.bad_epochs >= config.patience


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT or SIGTERM. ``checkpoint`` (None: the run had no folder) holds
    ``epochs_saved`` finished epochs; ``fit`` with the same run folder continues from there."""

    def __init__(self, signum: int, checkpoint: Path | None = None, epochs_saved: int = 0) -> None:
        self.signum, self.checkpoint, self.epochs_saved = signum, checkpoint, epochs_saved
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: what stopped training and what was kept."""
        stopped = f"training stopped by {signal.Signals(self.signum).name}"
        if self.checkpoint is None:
            return f"{stopped}; the run has no folder, so nothing was saved"
        if not self.epochs_saved:
            return f"{stopped} during its first epoch; nothing saved yet"
        return f"{stopped}; {self.checkpoint} holds its {self.epochs_saved} finished epoch(s)"


class _StopOnSignals:
    """While active (in the main thread), SIGINT and SIGTERM raise ``TrainingInterrupted`` at once, except
    inside ``deferred()``, whose block finishes first (a checkpoint is never cut in half)."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._deferring = False
        self._pending: int | None = None

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self._deferring:
            self._pending = signum
        else:
            raise TrainingInterrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals back until the block is done, then act on the last one."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None:
            raise TrainingInterrupted(self._pending)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} needs CUDA, which this machine (or this torch build) lacks; "
                         f"use auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) and ask for deterministic kernels where cheap."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (None: leave the setting alone), then restore it.
    Small models run several times faster on one thread than on two busy ones."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``_rng_state``; the generator states are CPU byte tensors even where a checkpoint loaded onto CUDA."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


_START_OVER = "delete it (and the folder's best.pt and result.json) to start the run over"


def _read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``last.pt`` as written by ``Trainer.fit``; ``CorruptFileError`` when it is truncated or not a checkpoint."""
    ckpt = load_torch_file(path, _START_OVER, map_location=device, weights_only=False)
    missing = [k for k in ("model", "optimizer", "best_weights", "state", "rng") if not isinstance(ckpt, dict)
               or k not in ckpt]
    if missing:
        raise CorruptFileError(path, f"no {', '.join(missing)} in it", _START_OVER)
    return ckpt


def _load_checkpoint(ckpt: dict[str, Any], model: SequentialModel,
                     optimizer: torch.optim.Optimizer) -> tuple[TrainState, dict[str, Any]]:
    """Restore ``model``, ``optimizer`` and the RNGs from a ``_read_checkpoint``; returns (state, best weights).
    The state's ``seconds``: the checkpoint's, or (written before they were kept) its epochs' logged seconds."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    _set_rng_state(ckpt["rng"])
    state = TrainState(**ckpt["state"])
    state.seconds = ckpt.get("seconds", sum(e.get("train_seconds", 0) + e.get("eval_seconds", 0) for e in state.log))
    return state, ckpt["best_weights"]


class RunMismatchError(ValueError):
    """A run folder holds a run with other settings than the ones asked for: resuming it would train (or record)
    a mix of both. ``path`` is the folder."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} {message}")


_MISSING = object()


def _setting_differences(saved: Any, now: Any, path: tuple[str, ...] = ()) -> list[str]:
    """'name (folder A, now B)' for every leaf where the run settings ``saved`` and ``now`` differ (``epochs``
    excepted: a longer budget continues a run); model and training fields by their own names."""
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = list(saved) + [k for k in now if k not in saved]
        return [d for k in keys if path + (k,) != ("train_config", "epochs")
                for d in _setting_differences(saved.get(k, _MISSING), now.get(k, _MISSING), path + (k,))]
    if saved == now:
        return []
    if path == ("protocols",) and isinstance(saved, list) and isinstance(now, list):
        modes = ["+".join(str(p.get("mode")) for p in ps if isinstance(p, dict)) for ps in (saved, now)]
        if len(saved) == len(now) and modes[0] == modes[1]:     # the same protocols: which of their fields differ
            return [d for a, b in zip(saved, now) for d in _setting_differences(a, b, path + (str(a.get("mode")),))]
        saved, now = modes

    def show(value: Any) -> str:
        text = "its default" if value is _MISSING else value if isinstance(value, str) else json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    name = path[-1] if path[0] in ("model_config", "train_config") and len(path) == 2 else ".".join(path)
    return [f"{name} (folder {show(saved)}, now {show(now)})"]


def check_resumable(run_dir: Path, ckpt: dict[str, Any], run: dict[str, Any] | None, config: TrainConfig) -> None:
    """``RunMismatchError`` unless the checkpoint ``ckpt`` of ``run_dir`` can continue as the run ``run``
    (``run_settings``; None: not checked) under ``config``: the same settings but for ``epochs``, and no fewer
    epochs than it already holds. A checkpoint written before settings were kept is resumed with a warning."""
    saved, done = ckpt.get("run"), ckpt["state"]["epoch"]
    if run is not None and saved is None:
        warnings.warn(f"{run_dir / 'last.pt'} does not record its run's settings (written before they were kept); "
                      f"resuming it without checking them", stacklevel=3)
    elif run is not None and saved != run:
        differences = _setting_differences(saved, run)
        if differences:
            shown = ", ".join(differences[:6]) + (f" and {len(differences) - 6} more" if len(differences) > 6 else "")
            raise RunMismatchError(run_dir, f"holds a run with other settings: {shown}; run it with the folder's "
                                            f"settings, or train into another folder (only epochs may change, to a "
                                            f"longer budget)")
    if done > config.epochs:
        raise RunMismatchError(run_dir, f"already holds {done} epochs, more than epochs={config.epochs}: its record "
                                        f"would claim a budget the run did not keep; give epochs (--epochs) of at "
                                        f"least {done}, or train into another folder")


def _resume_message(path: Path, state: TrainState, config: TrainConfig) -> str:
    """Where a resumed run stands and where it continues."""
    done = (f"{state.epoch} of {config.epochs} epochs done, best valid {config.select_metric} "
            f"{state.best_score:.4f} at epoch {state.best_epoch + 1}")
    if state.finished(config):
        return f"Resuming {path}: {done}; training had finished."
    return f"Resuming {path}: {done}; continuing with epoch {state.epoch + 1}."


def _metric_key(protocol: EvalProtocol) -> str:
    return protocol.mode if protocol.history_mask == "-inf" else f"{protocol.mode}:{protocol.history_mask}"


def training_batch(model: SequentialModel, split: SplitData, rows: Tensor) -> Batch:
    """The training sequences ``rows`` of ``split.train``, with the negatives [B, L, K] the model's loss needs
    (K = ``model.n_negatives``; none for a full cross-entropy), drawn outside each user's valid history."""
    batch = split.train.select(rows)
    if model.n_negatives:
        exclude = split.valid_history.mask(batch.users, split.n_items)
        batch = batch.with_negatives(sample_negatives(batch.targets, split.n_items, model.n_negatives,
                                                      exclude=exclude))
    return batch


class Trainer:
    """Fits any ``SequentialModel`` on a ``SplitData``; selection on the first protocol's metric."""

    def __init__(self, config: TrainConfig, protocols: tuple[EvalProtocol, ...] = (EvalProtocol(),),
                 run: dict[str, Any] | None = None) -> None:
        """``run``: the ``run_settings`` of the run ``fit`` trains, kept in its ``last.pt`` and checked against it
        when it resumes (None: neither)."""
        if not protocols:
            raise ValueError("Trainer needs at least one evaluation protocol")
        keys = [_metric_key(p) for p in protocols]
        if len(set(keys)) != len(keys):
            raise ValueError(f"evaluation protocols must differ in mode or history mask, got {keys}")
        check_select_metric(config, protocols[0])
        self.config, self.protocols, self.run = config, protocols, run

    def _train_epoch(self, model: SequentialModel, split: SplitData, optimizer: torch.optim.Optimizer,
                     epoch: int) -> float:
        cfg, train = self.config, split.train
        model.train()
        model.start_epoch(epoch, split)
        order = torch.randperm(len(train), device=train.device)
        total, steps = torch.zeros((), device=train.device), 0
        batches = range(0, len(train), cfg.batch_size)
        show = cfg.progress and len(batches) >= BATCH_BAR_MIN_STEPS
        loss_of = torch.compile(model.loss, dynamic=True) if cfg.compile else model.loss
        autocast = torch.autocast(train.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        for start in tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not show):
            batch = training_batch(model, split, order[start:start + cfg.batch_size])
            with autocast:
                loss = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
        return float(total) / max(steps, 1)

    def optimizer_kwargs(self, model: SequentialModel) -> dict[str, Any]:
        """Adam's settings for ``model``: the learning rate and weight decay of ``TrainConfig``, β's from the
        model's config (``SequentialModel.optimizer_settings``; torch's (0.9, 0.999) when it sets none)."""
        return {"lr": self.config.lr, "betas": (0.9, 0.999), "weight_decay": self.config.weight_decay,
                **model.optimizer_settings()}

    def build_optimizer(self, model: SequentialModel) -> torch.optim.Adam:
        """Adam with ``optimizer_kwargs``, in torch's fused kernel: one pass per parameter instead of ~10 elementwise
        ops (SASRec's parameters on one Zen 5 core: 0.29 vs 1.56 ms a step); the same update up to the last bit or
        two of fp32."""
        return torch.optim.Adam(model.parameters(), fused=True, **self.optimizer_kwargs(model))

    def fit(self, model: SequentialModel, split: SplitData, run_dir: Path | None = None) -> TrainState:
        """Train with early stopping; afterwards ``model`` holds the best validation weights.

        With ``run_dir``: ``last.pt`` (weights, optimiser, selection state, RNG states) is written after every
        epoch, ``best.pt`` (the best weights) at the end, and a run whose ``last.pt`` exists continues from it,
        printing where. SIGINT or SIGTERM stops training at once with ``TrainingInterrupted`` (a
        ``KeyboardInterrupt``); ``last.pt`` then holds every finished epoch, so nothing but the interrupted
        epoch is lost, and a checkpoint being written is completed first.

        The trainer's ``run`` (``run_settings``) is kept in ``last.pt``; a checkpoint of a run with other settings
        (``epochs`` excepted) raises ``RunMismatchError`` and a truncated one ``CorruptFileError``, both before any
        training. ``state.seconds`` counts the earlier sessions' time (``TrainState``).
        """
        cfg, run, session_start = self.config, self.run, time.perf_counter()
        optimizer = self.build_optimizer(model)
        state, best_weights = TrainState(), copy.deepcopy(model.state_dict())
        last_path = None if run_dir is None else Path(run_dir) / "last.pt"
        if last_path is not None and last_path.exists():
            ckpt = _read_checkpoint(last_path, split.train.device)
            check_resumable(last_path.parent, ckpt, run, cfg)
            state, best_weights = _load_checkpoint(ckpt, model, optimizer)
            del ckpt
            print(_resume_message(last_path, state, cfg), flush=True)
        saved_epochs = state.epoch

        def checkpoint() -> None:
            if last_path is not None:
                kept = {k: v for k, v in dataclasses.asdict(state).items() if k != "seconds"}  # older readers
                save_torch_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "best_weights": best_weights, "state": kept, "rng": _rng_state(),
                                   "seconds": state.seconds + time.perf_counter() - session_start,
                                   **({} if run is None else {"run": run})}, last_path)

        bar = tqdm(total=cfg.epochs, initial=state.epoch, desc=f"{type(model).__name__} on {split.name}",
                   disable=not cfg.progress)
        with _StopOnSignals() as signals:
            try:
                while not state.finished(cfg):
                    t0 = time.perf_counter()
                    loss = self._train_epoch(model, split, optimizer, state.epoch)
                    t1 = time.perf_counter()
                    valid = evaluate(model, split, "valid", self.protocols[0])
                    t2 = time.perf_counter()
                    score = valid[cfg.select_metric]
                    with signals.deferred():
                        if score > state.best_score:
                            state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
                            best_weights = copy.deepcopy(model.state_dict())
                        else:
                            state.bad_epochs += 1
                        state.log.append({"epoch": state.epoch + 1, "loss": loss, "valid": valid,
                                          "train_seconds": t1 - t0, "eval_seconds": t2 - t1})
                        state.epoch += 1
                        checkpoint()
                        saved_epochs = state.epoch
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", **{cfg.select_metric: f"{score:.4f}"},
                                    best=f"{state.best_score:.4f}@{state.best_epoch + 1}")
            except TrainingInterrupted as stop:
                raise TrainingInterrupted(stop.signum, last_path, saved_epochs) from None
            finally:
                bar.close()
        model.load_state_dict(best_weights)
        if run_dir is not None:
            save_torch_atomic(best_weights, Path(run_dir) / "best.pt")
        return state

    def test(self, model: SequentialModel, split: SplitData) -> dict[str, dict[str, dict[str, float]]]:
        """Valid and test metrics of ``model`` under every protocol: {split: {protocol key: metrics}}."""
        return {which: {_metric_key(p): evaluate(model, split, which, p) for p in self.protocols}
                for which in ("valid", "test")}


RESULT_NEUTRAL_FIELDS = ("device", "progress")


def run_settings(model_name: str, model_config: Any, split: SplitData, train_config: TrainConfig,
                 protocols: tuple[EvalProtocol, ...]) -> dict[str, Any]:
    """Everything that changes a run's result, as plain JSON: model and its config, the data (content hash),
    the training config except device/progress/checkpointing, and the protocols. ``run_key`` hashes it; ``last.pt``
    keeps it, so a run folder refuses to continue with other settings (``check_resumable``)."""
    train = {k: v for k, v in key_view(train_config).items() if k not in RESULT_NEUTRAL_FIELDS}
    return key_view({"model": model_name, "model_config": model_config, "data": data_fingerprint(split),
                     "train_config": train, "protocols": protocols})


def run_key(model_name: str, model_config: Any, split: SplitData, train_config: TrainConfig,
            protocols: tuple[EvalProtocol, ...]) -> str:
    """A hash of everything that changes a run's result (``run_settings``)."""
    return config_hash(run_settings(model_name, model_config, split, train_config, protocols))


def run_record(model_name: str, model_config: Any, split: SplitData, train_config: TrainConfig,
               protocols: tuple[EvalProtocol, ...], state: TrainState, metrics: dict[str, Any],
               device: torch.device, seconds: float, data_provenance: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record of one run: configs, protocol, metrics, epoch log, timings, seed, provenance."""
    epoch_times = [e["train_seconds"] for e in state.log]
    eval_times = [e["eval_seconds"] for e in state.log]
    return to_jsonable({
        "run_id": run_key(model_name, model_config, split, train_config, protocols),
        "model": model_name,
        "dataset": split.name,
        "model_config": model_config,
        "train_config": train_config,
        "data": {"name": split.name, "n_users": split.n_users, "n_items": split.n_items,
                 "max_len": split.max_len, "provenance": data_provenance or {}},
        "protocol": {"split": SPLIT_DESCRIPTION, "selection": f"best validation {train_config.select_metric} "
                     f"({_metric_key(protocols[0])}), patience {train_config.patience}",
                     "evaluation": [dict(p.as_dict(), key=_metric_key(p), text=p.describe()) for p in protocols]},
        "metrics": metrics,
        "best_epoch": state.best_epoch + 1,
        "epochs_run": state.epoch,
        "stopped_early": state.bad_epochs >= train_config.patience,
        "epoch_log": state.log,
        "timings": {
            "total_seconds": seconds,
            "train_seconds_per_epoch_median": statistics.median(epoch_times) if epoch_times else None,
            "eval_seconds_per_epoch_median": statistics.median(eval_times) if eval_times else None,
        },
        "seed": train_config.seed,
        "provenance": provenance(device),
        **(extra or {}),
    })


def train_and_evaluate(model_name: str, split: SplitData, model_config: Any | None = None,
                       train_config: TrainConfig = TrainConfig(),
                       protocols: tuple[EvalProtocol, ...] = (EvalProtocol(),), run_dir: Path | None = None,
                       data_provenance: dict[str, Any] | None = None,
                       initialise: Callable[[SequentialModel], None] | None = None,
                       extra: dict[str, Any] | None = None) -> tuple[SequentialModel, dict[str, Any]]:
    """Seed, build ``model_name`` for ``split``, fit (unless it has no parameters), test the best weights,
    and return (model, record). With ``run_dir`` the record is also written to ``run_dir/result.json``.

    ``initialise(model)`` runs after the seeded construction and before training (e.g. FAME copies its
    pretrained SASRec there); ``extra`` is merged into the record (e.g. where the weights came from)."""
    from .models.registry import build_model, get_entry

    device = resolve_device(train_config.device)
    split = split.to(device)
    seed_everything(train_config.seed)
    config = get_entry(model_name).config() if model_config is None else model_config
    model = build_model(model_name, split, config).to(device)
    if initialise is not None:
        initialise(model)
    trainer = Trainer(train_config, protocols, run_settings(model_name, config, split, train_config, protocols))
    start = time.perf_counter()
    trainable = any(p.requires_grad for p in model.parameters())
    state = trainer.fit(model, split, run_dir) if trainable and train_config.epochs else TrainState()
    metrics = trainer.test(model, split)
    optimizer = {"name": "Adam", **trainer.optimizer_kwargs(model)}
    seconds = state.seconds + time.perf_counter() - start     # every session's, a resumed run's too
    record = run_record(model_name, config, split, train_config, protocols, state, metrics, device,
                        seconds, data_provenance, {"optimizer": optimizer, **(extra or {})})
    if run_dir is not None:
        write_json_atomic(Path(run_dir) / "result.json", record)
    return model, record


# ---------------------------------------------------------------- command line


PROG = "python -m seqrec_lib.train"


class UsageError(Exception):
    """A mistake in the command line or in what it names (dataset, data files, settings): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` with argparse's one-line message instead of printing the whole usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (--help lists the options)")


def _strict_bool(text: str) -> bool:
    """true/yes/1 or false/no/0, in any case; anything else is an error (not silently False)."""
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _optional_number(kind: type, text: str) -> int | float | None:
    """A number of type ``kind``, or None for 'none'."""
    if text.strip().lower() == "none":
        return None
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind.__name__} or none, got {text!r}") from None


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, title: str,
                             positive: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per field of the dataclass ``cls`` (dest ``title.field``); ``positive`` fields must be
    at least 1."""
    group = parser.add_argument_group(title)
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        kwargs: dict[str, Any] = {"dest": f"{title}.{f.name}", "default": argparse.SUPPRESS,
                                  "help": f"(default: {f.default})"}
        optional = [t for t in get_args(hint) if t is not type(None)] if type(None) in get_args(hint) else []
        if get_origin(hint) is Literal:
            kwargs["choices"] = list(get_args(hint))
        elif len(optional) == 1 and optional[0] in (int, float):
            kwargs["type"], kwargs["metavar"] = partial(_optional_number, optional[0]), "{NUMBER,none}"
        elif hint is bool:
            kwargs["type"], kwargs["metavar"] = _strict_bool, "{true,false}"
        elif f.name in positive:
            kwargs["type"] = _positive_int
        elif hint in (int, float, str):
            kwargs["type"] = hint
        else:
            kwargs["type"] = str
        group.add_argument(f"--{f.name.replace('_', '-')}", **kwargs)


@dataclass(frozen=True)
class _Job:
    """One command-line run, ready to train."""

    model: str
    split: SplitData
    model_config: Any
    train_config: TrainConfig
    protocols: tuple[EvalProtocol, ...]
    run_dir: Path
    data_provenance: dict[str, Any]
    threads: int | None


def _parser(model: str, models: list[str], model_config: type) -> _Parser:
    parser = _Parser(prog=PROG, description="Train one model on one dataset and write its JSON record. "
                                            "Ctrl-C (or SIGTERM) stops it; the same command continues it.")
    parser.add_argument("--model", default=model, choices=models)
    parser.add_argument("--dataset", required=True, help="a registered dataset name (e.g. beauty, ml-100k, synthetic)")
    parser.add_argument("--data-dir", default=None,
                        help="raw data folder (default: $SEQREC_DATA_DIR, then the repository's data/)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<model>-<dataset>-<hash>)")
    parser.add_argument("--samples-step", type=_positive_int, default=None,
                        help="MOJITO's training windows every N items (100 ML-1M, 5 Amazon); default: one "
                             "all-positions sample per user")
    parser.add_argument("--eval", choices=["full", "sampled", "both"], default="full",
                        help="evaluation protocol(s); the first is used for model selection")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is often fastest for these small "
                             "models, and on a busy machine")
    _add_dataclass_arguments(parser, model_config, "model")
    _add_dataclass_arguments(parser, TrainConfig, "train", positive=("epochs", "patience", "batch_size"))
    return parser


def _check_writable(out: Path, flag: str) -> None:
    """``UsageError`` unless the folder ``out`` exists or can be made, and files can be written in it: the nearest
    existing folder on its path is tried with a temporary file (as root, permission bits alone would not tell)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {out}: {existing} is not a folder")
    try:
        fd, probe = temp_file_beside(existing / "write-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{flag} {out}: cannot write in {existing} ({err.strerror or err})") from None


def _prepare(argv: list[str] | None) -> _Job:
    """Parse ``argv``, check every setting, then load the data; any mistake raises ``UsageError`` (the settings'
    before any data is read)."""
    from .data.loading import load_dataset
    from .data.registry import DATASETS, get_spec
    from .data.sequences import build_splits
    from .models.registry import MODELS, get_entry

    pre = _Parser(prog=PROG, add_help=False)
    pre.add_argument("--model", default="sasrec", choices=sorted(MODELS))
    model = pre.parse_known_args(argv)[0].model
    entry = get_entry(model)
    args = vars(_parser(model, sorted(MODELS), entry.config).parse_args(argv))
    model_kw = {k.split(".", 1)[1]: v for k, v in args.items() if k.startswith("model.")}
    train_kw = {k.split(".", 1)[1]: v for k, v in args.items() if k.startswith("train.")}
    _check_writable(args["out"] or Path("runs"), "--out" if args["out"] else "the default --out")
    try:
        model_config, train_config = entry.config(**model_kw), TrainConfig(**train_kw)
        if train_config.lr == 0:
            raise UsageError("--lr 0: nothing would train (Adam never changes the weights); give a positive "
                             "learning rate")
        modes = {"full": ("full",), "sampled": ("sampled",), "both": ("full", "sampled")}[args["eval"]]
        protocols = tuple(EvalProtocol(mode=m, seed=train_config.seed) for m in modes)
        if train_config.select_metric not in evaluated_metrics(protocols[0]):
            raise UsageError(f"--select-metric {train_config.select_metric} is not evaluated; choose one of "
                             f"{', '.join(evaluated_metrics(protocols[0]))}")
        try:
            resolve_device(train_config.device)
        except ValueError as err:
            raise UsageError(f"--device {train_config.device}: {err}") from None
        if entry.needs_time and not get_spec(args["dataset"]).has_timestamps:
            raise UsageError(f"--model {model} needs timestamps, and the dataset {args['dataset']} has none; "
                             f"datasets with timestamps: {', '.join(n for n, d in DATASETS.items() if d.has_timestamps)}")
        data = load_dataset(args["dataset"], data_dir=args["data_dir"])
        split = build_splits(data, max_len=getattr(model_config, "max_len", 50), samples_step=args["samples_step"])
    except (ValueError, OSError) as err:  # bad settings, unknown dataset, missing/corrupt/misformatted files
        raise UsageError(str(err)) from None
    key = run_key(model, model_config, split, train_config, protocols)
    run_dir = args["out"] or Path("runs") / f"{model}-{args['dataset']}-{key}"
    return _Job(model, split, model_config, train_config, protocols, run_dir, data.provenance, args["threads"])


def main(argv: list[str] | None = None) -> int:
    """The command line. Exit status 0; 2 for a usage or data error (one line, no traceback); 128 + the
    signal number when SIGINT or SIGTERM stopped training (its checkpoint is kept). Started as a command (``argv``
    None) on a CPU where MKL's vendor shim helps, it first starts itself again with the shim (``blas``; off:
    ``SEQREC_FAST_BLAS=0``)."""
    fast_path_or_reexec(argv)
    try:
        job = _prepare(argv)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        with torch_threads(job.threads):
            _, record = train_and_evaluate(job.model, job.split, job.model_config, job.train_config,
                                           job.protocols, job.run_dir, job.data_provenance)
    except (RunMismatchError, CorruptFileError) as err:  # raised before any training
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        resume = "; run the same command to continue" if stop.epochs_saved else ""
        print(f"{PROG}: {stop.describe()}{resume}", file=sys.stderr)
        return 128 + stop.signum
    for which, by_protocol in record["metrics"].items():
        for key, metrics in by_protocol.items():
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            print(f"{which:5s} [{key}] {shown}")
    print(f"record: {job.run_dir / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
