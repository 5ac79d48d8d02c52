"""Experiments: run specs → records, with skipping of finished runs, resuming, sweeps and result tables.

A ``RunSpec`` names one training (model, dataset, configs, protocols, windows, label). ``run`` trains it
into ``<root>/<model>-<run key>/`` (the key hashes everything that changes the result, ``train.run_key``),
or reads the record back when ``result.json`` exists; an interrupted run continues from its checkpoint.
FAME goes through the two-stage trainer, so its SASRec-CE pretraining is the very run a SASRec-CE spec
with the same H trains (same folder), and is shared by every FAME at that H. ``run_many`` runs a sweep
through an executor (``seqrec_lib.executors``: "local", one run after the other, or "ray", Ray tasks on
this machine or a cluster), FAME runs depending on their pretraining.

The plan of docs/protocol.md §6:

1. ``head_sweep_specs``: SASRec-CE(H) and FAME w/o MoE(H) for every H (Fig. 5);
2. ``best_heads``: H* = argmax over H of the *validation* NDCG@20 of FAME w/o MoE;
3. ``expert_sweep_specs``: FAME(H*, N) for every N (Fig. 6); ``best_experts``: N* likewise;
4. ``table_specs``: SASRec-CE(H*), FAME w/o MoE(H*), FAME(H*, N*) over the profile's seeds (Table 2);
5. ``time_specs``: the MOJITO table: MOJITO, SASRec-BCE, SASRec-CE (and TiSASRec where registered), and
   with ``ablations`` MOJITO's ablations (``MOJITO_ABLATIONS``), every row on the same training windows
   (``profile.mojito_samples_step``), training and optimiser (``time_row_spec``), both protocols, over the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data.loading import load_dataset
from .data.sequences import SequenceData, SplitData, build_splits
from .data.synthetic import SyntheticConfig
from .evaluation import EvalProtocol
from .executors import Executor, Job, Outcome, get_executor
from .models.base import SequentialModel
from .models.fame import FameConfig
from .models.registry import MODELS, MOJITO_ABLATIONS, build_model, get_entry, make_config
from .models.sasrec import SASRecConfig
from .profiles import SYNTHETIC, Profile
from .records import load_torch_file, read_json_file, write_json_atomic
from .train import RESULT_NEUTRAL_FIELDS, TrainConfig, resolve_device, torch_threads, train_and_evaluate
from .two_stage import run_dir_for, train_fame_two_stage
from .weights import has_weights, shipped_state_dict

SASREC_CE = "SASRec-CE"
SASREC_BCE = "SASRec-BCE"
FAME = "FAME"
FAME_NO_MOE = "FAME w/o MoE"
MOJITO = "MOJITO"
MOST_POPULAR = "Most popular"

SAMPLED_NEGATIVES = 100   # docs/protocol.md §3: 1 target + 100 uniform negatives
SAMPLED_COHORTS = 5       # docs/protocol.md §3: 5 seeded user cohorts
SELECTION_METRIC = "NDCG@20"


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    ``model`` is a registered model name ("sasrec", "fame", "mojito", "pop"); ``model_config`` its config
    dataclass; ``protocols`` the evaluation protocols (the first selects the checkpoint);
    ``samples_step`` the training windows, a data option every model takes (docs/data.md §8: a window ending
    at the last training item and then every ``samples_step`` items back; None: one all-positions sample per
    user, the last ``max_len`` items); ``label`` the
    name in tables and figures ("SASRec-CE", "FAME w/o MoE", "FAME", "MOJITO", "SASRec-BCE"; empty:
    ``label_for`` the model and config).
    """

    model: str
    dataset: str
    model_config: Any
    train_config: TrainConfig
    protocols: tuple[EvalProtocol, ...]
    samples_step: int | None = None
    label: str = ""

    def __post_init__(self) -> None:
        entry = get_entry(self.model)  # KeyError listing the known models
        if not isinstance(self.model_config, entry.config):
            raise TypeError(f"RunSpec.model_config for {self.model!r} must be a {entry.config.__name__}, "
                            f"got {type(self.model_config).__name__}")
        object.__setattr__(self, "protocols", tuple(self.protocols))
        if not self.protocols or not all(isinstance(p, EvalProtocol) for p in self.protocols):
            raise ValueError(f"RunSpec.protocols must be a non-empty tuple of EvalProtocol, got {self.protocols!r}")
        if self.samples_step is not None and self.samples_step < 1:
            raise ValueError(f"RunSpec.samples_step must be None or positive, got {self.samples_step}")
        if not self.label:
            object.__setattr__(self, "label", label_for(self.model, self.model_config))

    @property
    def max_len(self) -> int | None:
        """The model's sequence length (None for models without one, e.g. "pop")."""
        return getattr(self.model_config, "max_len", None)

    @property
    def seed(self) -> int:
        return self.train_config.seed


# ---------------------------------------------------------------- data


def load_split(dataset: str, profile: Profile, samples_step: int | None = None,
               max_len: int | None = None) -> tuple[SequenceData, SplitData]:
    """The dataset and its leave-one-out split (CPU tensors), cached in this process.

    ``synthetic`` is generated with ``profile.synthetic``; ``max_len`` defaults to ``profile.max_len``;
    ``samples_step`` gives MOJITO's training windows. The trainer moves the split to its device.
    """
    synthetic = profile.synthetic if dataset == SYNTHETIC else None
    if dataset == SYNTHETIC and synthetic is None:
        raise ValueError(f"profile {profile.name!r} has synthetic=None, so it cannot load the 'synthetic' dataset")
    return _load_split_cached(dataset, profile.data_dir, synthetic, profile.max_len if max_len is None else max_len,
                              samples_step)


@lru_cache(maxsize=16)
def _load_split_cached(dataset: str, data_dir: str | None, synthetic: SyntheticConfig | None, max_len: int,
                       samples_step: int | None) -> tuple[SequenceData, SplitData]:
    data = load_dataset(dataset, data_dir=data_dir, synthetic=synthetic)
    return data, build_splits(data, max_len=max_len, samples_step=samples_step)


# ---------------------------------------------------------------- specs


def runs_root(profile: Profile, outputs: str | Path = "outputs") -> Path:
    """``<outputs>/<profile name>/runs``: where a profile's run folders live."""
    return Path(outputs) / profile.name / "runs"


def label_for(model: str, model_config: Any) -> str:
    """The table label of a model configuration (a dataclass or a record's dict), by the model's registry entry
    (SASRec-CE/BCE, FAME or FAME w/o MoE, MOJITO with its ablations named, TiSASRec, ...)."""
    fields = model_config if isinstance(model_config, Mapping) else dataclasses.asdict(model_config)
    return get_entry(model).label_for(fields, model)


def full_protocol(seed: int) -> EvalProtocol:
    """Full ranking over all items, history masked with -inf, HR/NDCG@{5,10,20} (docs/protocol.md §2)."""
    return EvalProtocol(mode="full", seed=seed)


def sampled_protocol(profile: Profile, seed: int) -> EvalProtocol:
    """MOJITO's protocol: target + 100 uniform negatives, 5 seeded user cohorts (docs/protocol.md §3)."""
    return EvalProtocol(mode="sampled", n_negatives=SAMPLED_NEGATIVES, n_cohorts=SAMPLED_COHORTS,
                        cohort_size=profile.mojito_cohort_size, seed=seed)


def _train_config(profile: Profile, base: TrainConfig, seed: int) -> TrainConfig:
    return dataclasses.replace(base, seed=seed, device=profile.device)


def fame_config(profile: Profile, heads: int, experts: int) -> FameConfig:
    """FAME (N = ``experts``; 1 = FAME w/o MoE) on the profile's backbone with ``heads`` heads, its W_f
    initialisation and last-layer residual."""
    return FameConfig(d=profile.d, n_heads=heads, n_experts=experts, max_len=profile.max_len,
                      attn_dropout=profile.fame_dropout("attn_dropout"),
                      hidden_dropout=profile.fame_dropout("hidden_dropout"), wf_init=profile.fame_wf_init,
                      attn_residual=profile.fame_attn_residual)


def sasrec_ce_config(profile: Profile, heads: int) -> SASRecConfig:
    """SASRec-CE with ``heads`` heads: exactly the pretraining of FAME at that H (same run folder)."""
    return fame_config(profile, heads, 1).sasrec_config()


def fame_spec(profile: Profile, dataset: str, heads: int, experts: int, seed: int) -> RunSpec:
    """FAME(H, N) (FAME w/o MoE when N = 1), two-stage, full-ranking protocol."""
    config = fame_config(profile, heads, experts)
    return RunSpec("fame", dataset, config, _train_config(profile, profile.fame_train, seed), (full_protocol(seed),),
                   label=label_for("fame", config))


def sasrec_ce_spec(profile: Profile, dataset: str, heads: int, seed: int) -> RunSpec:
    """SASRec-CE(H), full-ranking protocol (the "SASRec" series of Fig. 5)."""
    return RunSpec("sasrec", dataset, sasrec_ce_config(profile, heads),
                   _train_config(profile, profile.fame_train, seed), (full_protocol(seed),), label=SASREC_CE)


def _time_protocols(profile: Profile, seed: int) -> tuple[EvalProtocol, ...]:
    return sampled_protocol(profile, seed), full_protocol(seed)


TIME_ADAM = {"adam_beta1": 0.9, "adam_beta2": 0.98}
"""Adam's β's of every row of the MOJITO table: the official code's (MOJITO's, and SASRec's and TiSASRec's own)."""


def time_row_spec(profile: Profile, dataset: str, model: str, seed: int, **config: Any) -> RunSpec:
    """One row of the MOJITO table, by one rule for every model: the profile's training windows
    (``mojito_samples_step``), training budget (``mojito_train``), width, length and dropout
    (``mojito_dropout``), 2 heads, Adam β's ``TIME_ADAM``, and both protocols (sampled first: it selects the
    checkpoint). The settings a model's config has are set; ``config`` overrides them (e.g. ``loss="bce"``)."""
    settings = {"d": profile.d, "max_len": profile.max_len, "n_heads": 2, "dropout": profile.mojito_dropout,
                "attn_dropout": profile.mojito_dropout, "hidden_dropout": profile.mojito_dropout, **TIME_ADAM}
    known = {f.name for f in dataclasses.fields(get_entry(model).config)}
    model_config = make_config(model, **{**{k: v for k, v in settings.items() if k in known}, **config})
    return RunSpec(model, dataset, model_config, _train_config(profile, profile.mojito_train, seed),
                   _time_protocols(profile, seed), samples_step=profile.mojito_samples_step)


def mojito_spec(profile: Profile, dataset: str, seed: int, **config: Any) -> RunSpec:
    """MOJITO (``config``: an ablation's switches) as a row of the MOJITO table (``time_row_spec``)."""
    return time_row_spec(profile, dataset, "mojito", seed, **config)


def sasrec_bce_spec(profile: Profile, dataset: str, seed: int, heads: int = 2) -> RunSpec:
    """SASRec-BCE, MOJITO's baseline: the same windows, BCE with one negative, training and protocols."""
    return time_row_spec(profile, dataset, "sasrec", seed, n_heads=heads, loss="bce")


def time_sasrec_ce_spec(profile: Profile, dataset: str, seed: int) -> RunSpec:
    """SASRec-CE as a row of the MOJITO table: SASRec-BCE's settings and windows with the full softmax CE."""
    return time_row_spec(profile, dataset, "sasrec", seed, loss="ce")


def time_model_specs(profile: Profile, dataset: str, seed: int) -> list[RunSpec]:
    """The MOJITO table's model rows for one seed: MOJITO, SASRec-BCE, SASRec-CE, then the profile's
    ``time_baselines`` (e.g. TiSASRec with BCE, its own loss; GRU4Rec; BERT4Rec with its longer training,
    ``profile.train_overrides``; docs/baselines.md §5)."""
    specs = [mojito_spec(profile, dataset, seed), sasrec_bce_spec(profile, dataset, seed),
             time_sasrec_ce_spec(profile, dataset, seed)]
    for model in profile.time_baselines:
        spec = time_row_spec(profile, dataset, model, seed)
        specs.append(dataclasses.replace(spec, train_config=profile.train_for(model, spec.train_config)))
    return specs


def mojito_ablation_specs(profile: Profile, dataset: str, seed: int) -> list[RunSpec]:
    """MOJITO's ablations (``MOJITO_ABLATIONS``, one switch each) as rows of the MOJITO table."""
    return [mojito_spec(profile, dataset, seed, **setting) for setting in MOJITO_ABLATIONS.values()]


def pop_spec(profile: Profile, dataset: str, seed: int) -> RunSpec:
    """The most-popular baseline (nothing to train), full-ranking protocol."""
    config = get_entry("pop").config()
    return RunSpec("pop", dataset, config, _train_config(profile, profile.train, seed), (full_protocol(seed),),
                   label=MOST_POPULAR)


def baseline_spec(profile: Profile, model: str, dataset: str, seed: int) -> RunSpec:
    """A baseline row of Table 2 (docs/baselines.md §5), by one rule for every model: the settings of the
    profile's SASRec-CE that the model's config has (d, max_len, ``single_heads`` heads, dropout), the FAME
    training (``profile.train`` with the model's ``profile.train_overrides``), full ranking."""
    settings = {"d": profile.d, "max_len": profile.max_len, "n_heads": profile.single_heads,
                "attn_dropout": profile.dropout, "hidden_dropout": profile.dropout}
    known = {f.name for f in dataclasses.fields(get_entry(model).config)}
    config = make_config(model, **{k: v for k, v in settings.items() if k in known})
    return RunSpec(model, dataset, config, _train_config(profile, profile.train_for(model, profile.train), seed),
                   (full_protocol(seed),))


def baseline_specs(profile: Profile, dataset: str, seeds: Iterable[int] | None = None) -> list[RunSpec]:
    """Table 2's baseline rows on ``dataset``: ``baseline_spec`` of every ``profile.baselines``, seed by seed
    (``seeds``; default the profile's first, enough to stand beside the paper's single number)."""
    return [baseline_spec(profile, model, dataset, seed) for seed in (seeds or profile.seeds[:1])
            for model in profile.baselines]


def needs_time(model: str) -> bool:
    """Whether ``model`` reads the time of its inputs (the registry's ``needs_time``: MOJITO, TiSASRec)."""
    return get_entry(model).needs_time


def default_dataset(profile: Profile, model: str) -> str:
    """The dataset ``01_train`` trains ``model`` on by default: the profile's first timestamped dataset for a
    model that reads time, else its first FAME dataset."""
    return (profile.time_datasets if needs_time(model) else profile.fame_datasets)[0]


def with_overrides(spec: RunSpec, **overrides: Any) -> RunSpec:
    """``spec`` with fields of its model config and/or its TrainConfig replaced (e.g. ``n_heads=4``,
    ``n_experts=8``, ``epochs=5``, ``seed=2``) and ``samples_step``; the protocols follow the seed and
    the label follows the config. An unknown name raises TypeError listing the known ones."""
    overrides = dict(overrides)
    samples_step = overrides.pop("samples_step", spec.samples_step)
    model_fields = {f.name for f in dataclasses.fields(spec.model_config)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - model_fields - train_fields)
    if unknown:
        raise TypeError(f"{spec.model} run has no setting(s) {unknown}; model settings: {sorted(model_fields)}; "
                        f"training settings: {sorted(train_fields)}; or samples_step")
    model_config = dataclasses.replace(spec.model_config, **{k: v for k, v in overrides.items() if k in model_fields})
    train_config = dataclasses.replace(spec.train_config, **{k: v for k, v in overrides.items() if k in train_fields})
    protocols = tuple(dataclasses.replace(p, seed=train_config.seed) for p in spec.protocols)
    return RunSpec(spec.model, spec.dataset, model_config, train_config, protocols, samples_step,
                   label_for(spec.model, model_config))


def single_run_spec(profile: Profile, model: str, dataset: str, **overrides: Any) -> RunSpec:
    """What ``01_train`` trains: SASRec-CE, FAME (H = ``single_heads``, N = ``single_experts``, two-stage),
    MOJITO (its windows, BCE with one negative, sampled protocol then full), the popularity baseline, or any
    other registered model (a baseline: the MOJITO table's rule if it reads time, else Table 2's), with the
    profile's settings and seed ``seeds[0]``; ``overrides`` as in ``with_overrides``."""
    seed = profile.seeds[0]
    builders = {
        "sasrec": lambda: sasrec_ce_spec(profile, dataset, profile.single_heads, seed),
        "fame": lambda: fame_spec(profile, dataset, profile.single_heads, profile.single_experts, seed),
        "mojito": lambda: mojito_spec(profile, dataset, seed),
        "pop": lambda: pop_spec(profile, dataset, seed),
    }
    if model not in builders and model not in MODELS:
        raise ValueError(f"single_run_spec: model must be one of {sorted(set(builders) | set(MODELS))}, "
                         f"got {model!r}")
    if model in builders:
        spec = builders[model]()
    elif needs_time(model):
        spec = time_row_spec(profile, dataset, model, seed)
        spec = dataclasses.replace(spec, train_config=profile.train_for(model, spec.train_config))
    else:
        spec = baseline_spec(profile, model, dataset, seed)
    return with_overrides(spec, **overrides) if overrides else spec


def head_sweep_specs(profile: Profile, dataset: str) -> list[RunSpec]:
    """Fig. 5: SASRec-CE(H) for every H, then FAME w/o MoE(H) (fine-tuned from it), seed ``seeds[0]``."""
    seed = profile.seeds[0]
    return ([sasrec_ce_spec(profile, dataset, h, seed) for h in profile.heads]
            + [fame_spec(profile, dataset, h, 1, seed) for h in profile.heads])


def expert_sweep_specs(profile: Profile, dataset: str, heads: int) -> list[RunSpec]:
    """Fig. 6: FAME(H = ``heads``, N) for every N of the profile, seed ``seeds[0]``."""
    return [fame_spec(profile, dataset, heads, n, profile.seeds[0]) for n in profile.experts]


def table_specs(profile: Profile, dataset: str, heads: int, experts: int) -> list[RunSpec]:
    """Table 2 rows: SASRec-CE(H*), FAME w/o MoE(H*), FAME(H*, N*) for every seed of the profile."""
    return [spec for seed in profile.seeds
            for spec in (sasrec_ce_spec(profile, dataset, heads, seed), fame_spec(profile, dataset, heads, 1, seed),
                         fame_spec(profile, dataset, heads, experts, seed))]


HEAD_DIVERSITY_TIME_ROWS = (MOJITO, SASREC_BCE, SASREC_CE, "TiSASRec")
"""The MOJITO table's rows with attention heads that notebook 04 compares (docs/analysis.md §1)."""


def head_diversity_specs(profile: Profile) -> dict[str, list[RunSpec]]:
    """Notebook 04's comparisons, every seed of the profile: ``time``, the rows ``HEAD_DIVERSITY_TIME_ROWS`` of
    the MOJITO table on the first timestamped dataset (H = 2); ``facets``, FAME(H, N) of the case study
    (``case_study_heads``, ``single_experts``) and the SASRec-CE(H) it is fine-tuned from, on the first FAME
    dataset."""
    time_rows = [spec for spec in time_specs(profile, profile.time_datasets[0], ablations=False)
                 if spec.label in HEAD_DIVERSITY_TIME_ROWS]
    facets = [spec for seed in profile.seeds
              for fame in [with_overrides(single_run_spec(profile, "fame", profile.fame_datasets[0],
                                                          n_heads=profile.case_study_heads), seed=seed)]
              for spec in prerequisites(fame) + [fame]]
    return {"time": time_rows, "facets": facets}


def time_specs(profile: Profile, dataset: str, ablations: bool | None = None) -> list[RunSpec]:
    """The MOJITO table's runs, seed by seed: the model rows (``time_model_specs``), then, with ``ablations``
    (None: ``profile.mojito_ablations``), MOJITO's ablations; all on the same windows, training and protocols."""
    ablations = profile.mojito_ablations if ablations is None else ablations
    return [spec for seed in profile.seeds
            for spec in time_model_specs(profile, dataset, seed)
            + (mojito_ablation_specs(profile, dataset, seed) if ablations else [])]


# ---------------------------------------------------------------- running


def run_dir(spec: RunSpec, profile: Profile, root: str | Path) -> Path:
    """The folder ``spec`` trains into: ``<root>/<model>-<run key>``."""
    _, split = load_split(spec.dataset, profile, spec.samples_step, spec.max_len)
    return run_dir_for(Path(root), spec.model, spec.model_config, split, spec.train_config, spec.protocols)


def published_record(folder: Path) -> Path:
    """Where the record of the run in ``folder`` (``<outputs>/<profile>/runs/<name>``) is published, committed
    with the repository: ``<outputs>/<profile>/records/<name>.json``. Run folders hold checkpoints and stay out
    of git; a published record counts as a finished run, so a fresh clone continues where the last one stopped."""
    return folder.parent.parent / "records" / f"{folder.name}.json"


COMMITTED_OUTPUTS = Path(__file__).resolve().parents[1] / "outputs"
"""The repository's committed results (``outputs/<profile>/records/``), read wherever a run's outputs go."""


def finished_record(folder: Path) -> Path | None:
    """The record that makes the run in ``folder`` (``<outputs>/<profile>/runs/<name>``) finished: its
    ``result.json``, else its published record beside the outputs, else the record of the same name committed with
    the repository (``outputs/<profile>/records/<name>.json``), so that ``--outputs DIR`` reads the published runs
    instead of training them again."""
    committed = COMMITTED_OUTPUTS / folder.parent.parent.name / "records" / f"{folder.name}.json"
    for path in (folder / "result.json", published_record(folder), committed):
        if path.exists():
            return path
    return None


def is_done(spec: RunSpec, profile: Profile, root: str | Path) -> bool:
    """True when ``spec`` has a ``result.json`` or a published record (``run`` would only read it back)."""
    return finished_record(run_dir(spec, profile, root)) is not None


def _spec_fields(spec: RunSpec, folder: Path) -> dict[str, Any]:
    """What a record carries about the spec that made it (not part of the run key)."""
    return {"label": spec.label, "samples_step": spec.samples_step, "run_dir": str(folder)}


def run(spec: RunSpec, profile: Profile, root: str | Path) -> dict[str, Any]:
    """Train ``spec`` (or read its finished record back: ``result.json`` or the published record) and return the
    record with its ``label``.

    A folder without a finished record but with ``last.pt`` continues from that checkpoint. FAME runs
    pretrain (or reuse) their SASRec-CE first; their record's ``pretrained`` names it.
    """
    data, split = load_split(spec.dataset, profile, spec.samples_step, spec.max_len)
    folder = run_dir_for(Path(root), spec.model, spec.model_config, split, spec.train_config, spec.protocols)
    done = finished_record(folder)
    if done is not None:
        _log_run(Path(root), "read", folder, done)
        record = read_json_file(done, "delete it to train the run again (a committed record: restore it from git)")
        return {**record, **_spec_fields(spec, folder)}
    with cpu_threads(profile, resolve_device(spec.train_config.device)):
        record = _train_spec(spec, data, split, Path(root), folder)
    write_json_atomic(folder / "result.json", record)
    _log_run(Path(root), "trained", folder, folder / "result.json")
    return record


RUNS_LOG = "runs.tsv"
"""``<outputs>/<profile>/logs/runs.tsv``: one line per ``run`` call, ``read`` or ``trained``, the run folder's name
and the record it came from (``run_all.sh`` sums it up)."""


def _log_run(root: Path, how: str, folder: Path, record: Path) -> None:
    logs = root.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / RUNS_LOG, "a") as log:
        log.write(f"{how}\t{folder.name}\t{record}\n")


def to_run(specs: Iterable[RunSpec], profile: Profile, root: str | Path) -> list[RunSpec]:
    """``specs`` when the profile trains missing runs (``train_missing``); else (the paper profile) only those
    with a finished record, saying how many are left out and how to train them, so a notebook re-draws what is
    published and trains nothing."""
    specs = list(specs)
    if profile.train_missing:
        return specs
    done = [spec for spec in specs if is_done(spec, profile, root)]
    if len(done) < len(specs):
        missing = [spec for spec in specs if spec not in done]
        print(f"{len(missing)} of {len(specs)} runs have no published record yet and are left out "
              f"({', '.join(sorted({f'{s.label} on {s.dataset}' for s in missing}))}); "
              "python scripts/paper_runs.py trains them (outputs/paper/results/status.md lists the plans)")
    return done


def _train_spec(spec: RunSpec, data: SequenceData, split: SplitData, root: Path, folder: Path) -> dict[str, Any]:
    """Train ``spec`` into ``folder`` (FAME: two stages under ``root``) and return its record."""
    if spec.model == "fame":
        _, record = train_fame_two_stage(split, spec.model_config, spec.train_config, root, spec.protocols,
                                         data.provenance)
    else:
        _, record = train_and_evaluate(spec.model, split, spec.model_config, spec.train_config, spec.protocols,
                                       folder, data.provenance)
    return {**record, **_spec_fields(spec, folder)}


@contextmanager
def cpu_threads(profile: Profile, device: torch.device) -> Iterator[None]:
    """Use ``profile.cpu_threads`` torch threads inside the block when ``device`` is the CPU."""
    with torch_threads(profile.cpu_threads if device.type == "cpu" else None):
        yield


def prerequisites(spec: RunSpec) -> list[RunSpec]:
    """Runs ``spec`` builds on, as its model's registry entry says (FAME: its SASRec-CE pretraining with the same
    H and backbone), with the same training, protocols and data."""
    pretraining = get_entry(spec.model).pretraining
    if pretraining is None:
        return []
    model, config = pretraining(spec.model_config)
    return [RunSpec(model, spec.dataset, config, spec.train_config, spec.protocols, spec.samples_step,
                    label_for(model, config))]


def _identity(spec: RunSpec) -> RunSpec:
    """``spec`` with what does not change its result normalised: the label (to the config's own) and the
    result-neutral training fields (device, progress bars, checkpoint interval; ``RESULT_NEUTRAL_FIELDS``)."""
    defaults = TrainConfig()
    train = dataclasses.replace(spec.train_config, **{f: getattr(defaults, f) for f in RESULT_NEUTRAL_FIELDS})
    return dataclasses.replace(spec, train_config=train, label="")


RUN_LOG = "run.log"


def describe(spec: RunSpec) -> str:
    """``spec`` in one line for messages: label, model, dataset, H, N, seed."""
    config = dataclasses.asdict(spec.model_config)
    parts = [f"model={spec.model}", f"dataset={spec.dataset}"]
    parts += [f"{short}={config[field]}" for field, short in (("n_heads", "H"), ("n_experts", "N")) if field in config]
    return f"{spec.label} ({', '.join(parts + [f'seed={spec.seed}'])})"


def execute_run(spec: RunSpec, profile: Profile, root: str | Path) -> dict[str, Any]:
    """``run`` as a sweep runs it: without the trainer's progress bars, with what the run prints, its
    summary and any error appended to ``run.log`` in its run folder (the sweep shows one bar only)."""
    spec = dataclasses.replace(spec, train_config=dataclasses.replace(spec.train_config, progress=False))
    folder = run_dir(spec, profile, root)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(folder / RUN_LOG, "a", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {describe(spec)} on {socket.gethostname()} (pid "
              f"{os.getpid()}, device {spec.train_config.device}, CUDA_VISIBLE_DEVICES="
              f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')!r})")
        try:
            record = run(spec, profile, root)
        except Exception:
            print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] failed after {time.perf_counter() - start:.1f} s:")
            traceback.print_exc(file=log)
            raise
        print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] done in {time.perf_counter() - start:.1f} s: "
              f"{record.get('epochs_run')} epochs, best {record.get('best_epoch')}; test metrics "
              f"{json.dumps(record.get('metrics', {}).get('test'))} (every epoch: result.json)")
    return record


@dataclass(frozen=True)
class RunFailure:
    """A run of a sweep that produced no record: it raised (``error``, its traceback), or it was not started
    because a run it needs failed (``dependency``)."""

    spec: RunSpec
    error: str | None = None
    dependency: RunSpec | None = None

    def __str__(self) -> str:
        if self.dependency is not None:
            return f"{describe(self.spec)}: not run, it needs {describe(self.dependency)}, which failed"
        last = (self.error or "").strip().splitlines()
        return f"{describe(self.spec)}: {last[-1] if last else 'failed'}"


class SweepError(RuntimeError):
    """Some runs of a sweep failed; every other run finished and is in the results store.

    ``failures``: one ``RunFailure`` per failed or blocked run (with its spec); ``records``: the records in
    the order of the specs, None where a run has none. Running the sweep again trains only those runs.
    """

    def __init__(self, failures: list[RunFailure], records: list[dict[str, Any] | None], root: Path) -> None:
        self.failures, self.records = failures, records
        lines = "\n".join(f"  - {failure}" for failure in failures)
        super().__init__(f"{len(failures)} run(s) of the sweep failed (their tracebacks are in {RUN_LOG} in their "
                         f"run folders under {root}; the other runs finished):\n{lines}")


def run_many(specs: Iterable[RunSpec], profile: Profile, root: str | Path, executor: str | Executor = "local",
             address: str | None = None) -> list[dict[str, Any]]:
    """Run every spec (finished ones are read back) and return their records in order.

    ``executor``: "local" trains the runs one after the other in this process; "ray" trains them as Ray
    tasks (``seqrec_lib.executors``; ``address``: None starts a local Ray, "auto" or "ray://host:port"
    joins a cluster), each reserving ``profile.run_cpus`` CPUs and ``profile.run_gpus`` GPUs. The FAME runs
    whose SASRec-CE pretraining is not finished depend on it (one pretraining per H, trained once); specs
    that differ only in label, device or progress bars run once. Either way the records are the same, in
    the same store. One progress bar counts the sweep's runs; each run's output goes to ``run.log`` in
    its folder. A run that fails does not stop the others: at the end ``SweepError`` lists every failed
    run with its spec, and every run that needed it, and running the sweep again trains only those.
    """
    specs = list(specs)
    runner = get_executor(executor, address)
    records: dict[RunSpec, dict[str, Any]] = {}        # identity → record (finished runs)
    jobs: list[Job] = []
    job_of: dict[RunSpec, int] = {}                    # identity → index in jobs

    def plan(spec: RunSpec) -> int | None:
        """The job index of ``spec`` (None when it is finished), after those of what it needs."""
        key = _identity(spec)
        if key in records or key in job_of:
            return job_of.get(key)
        if is_done(spec, profile, root):
            records[key] = run(spec, profile, root)
            return None
        needs = tuple(i for pre in prerequisites(spec) if (i := plan(pre)) is not None)
        job_of[key] = len(jobs)
        if runner.reserves_gpus and not profile.run_gpus and spec.train_config.device == "auto":
            # a run that reserves no GPU trains on the CPU, even where the engine lets it see the GPUs
            spec = dataclasses.replace(spec, train_config=dataclasses.replace(spec.train_config, device="cpu"))
        jobs.append(Job(spec, needs, cpus=profile.run_cpus, gpus=profile.run_gpus))
        return job_of[key]

    for spec in specs:
        plan(spec)
    failed = 0
    with tqdm(total=len(records) + len(jobs), initial=len(records), unit="run",
              desc=f"runs ({profile.name}, {runner.name})") as bar:
        def on_done(i: int, outcome: Outcome) -> None:
            nonlocal failed
            failed += not outcome.ok
            bar.update(1)
            if failed:
                bar.set_postfix(failed=failed)

        outcomes = runner.execute(partial(execute_run, profile=profile, root=str(root)), jobs, on_done)
    failures = []
    for job, outcome in zip(jobs, outcomes):
        if outcome.ok:
            records[_identity(job.payload)] = outcome.result
        else:
            dependency = None if outcome.blocked_by is None else jobs[outcome.blocked_by].payload
            failures.append(RunFailure(job.payload, outcome.error, dependency))
    ordered = [None if _identity(spec) not in records else {**records[_identity(spec)], "label": spec.label}
               for spec in specs]
    if failures:
        raise SweepError(failures, ordered, Path(root))
    return ordered  # type: ignore[return-value]


def with_weights(records: Iterable[dict[str, Any]], profile: Profile) -> list[dict[str, Any]]:
    """The ``records`` whose weights ``load_trained`` can find (a checkpoint or shipped weights), saying which are
    left out: on the paper profile, a notebook draws what ships and trains nothing."""
    records = list(records)
    kept = [r for r in records if has_weights(r, profile.name)]
    if len(kept) < len(records):
        left = sorted(f"{r['label']} on {r['dataset']}, seed {r['seed']}" for r in records if r not in kept)
        print(f"{len(left)} of {len(records)} runs have neither a checkpoint nor shipped weights and are left out "
              f"({'; '.join(left)}); docs/weights.md says how to re-make and ship them")
    return kept


def load_trained(record: dict[str, Any], profile: Profile) -> tuple[SequentialModel, SequenceData, SplitData]:
    """The model of a run record with its best-validation weights, in eval mode on the CPU, with the dataset and
    split it was trained on.

    The weights (none for models without parameters): the run folder's ``best.pt`` when it is there, else the
    weights shipped for the record (``seqrec_lib.weights``: ``<name>.safetensors`` of the ``weights/`` folder beside
    the runs root's ``records/``, or of this checkout's ``outputs/<profile>/weights/``, found by the run folder's
    name; size and sha256 checked, ``WeightsError`` otherwise), else ``NoWeightsError`` (a FileNotFoundError) naming
    the run, the command that trains it and how long that took (docs/weights.md)."""
    config = make_config(record["model"], **record["model_config"])
    data, split = load_split(record["dataset"], profile, record.get("samples_step"), getattr(config, "max_len", None))
    model = build_model(record["model"], split, config)
    if any(True for _ in model.parameters()):
        checkpoint = Path(record["run_dir"]) / "best.pt" if record.get("run_dir") else None
        if checkpoint is not None and checkpoint.exists():
            state = load_torch_file(checkpoint, "delete it to use the shipped weights, or train the run again",
                                    map_location="cpu", weights_only=True)
        else:
            state = shipped_state_dict(record, profile.name)
        model.load_state_dict(state)
    return model.eval(), data, split


# ---------------------------------------------------------------- selection


def _valid_metric(record: dict[str, Any], metric: str, protocol: str) -> float:
    try:
        return float(record["metrics"]["valid"][protocol][metric])
    except KeyError:
        raise KeyError(f"run {record.get('run_id')} ({record.get('label')}) has no validation {metric} under "
                       f"protocol {protocol!r}") from None


def _argmax_by(records: Iterable[dict[str, Any]], dataset: str, label: str, field: str, metric: str,
               protocol: str, where: dict[str, Any] | None = None) -> int:
    """The value of model-config ``field`` whose runs (mean over seeds) have the best validation metric;
    ties go to the smaller value."""
    scores: dict[int, list[float]] = {}
    for record in records:
        config = record.get("model_config", {})
        if record.get("dataset") != dataset or record.get("label") != label:
            continue
        if any(config.get(k) != v for k, v in (where or {}).items()):
            continue
        scores.setdefault(int(config[field]), []).append(_valid_metric(record, metric, protocol))
    if not scores:
        raise ValueError(f"no {label!r} runs on dataset {dataset!r}"
                         + (f" with {where}" if where else "") + " among the records")
    return max(sorted(scores), key=lambda value: float(np.mean(scores[value])))


def best_heads(records: Iterable[dict[str, Any]], dataset: str, metric: str = SELECTION_METRIC,
               protocol: str = "full") -> int:
    """H* (docs/protocol.md §6): the H of FAME w/o MoE with the best *validation* NDCG@20 on ``dataset``."""
    return _argmax_by(records, dataset, FAME_NO_MOE, "n_heads", metric, protocol)


def best_experts(records: Iterable[dict[str, Any]], dataset: str, heads: int, metric: str = SELECTION_METRIC,
                 protocol: str = "full") -> int:
    """N* (docs/protocol.md §6): the N of FAME at H = ``heads`` with the best *validation* NDCG@20 on ``dataset``."""
    return _argmax_by(records, dataset, FAME, "n_experts", metric, protocol, where={"n_heads": heads})


# ---------------------------------------------------------------- tables

ID_COLUMNS = ("label", "model", "dataset", "heads", "experts", "seed", "run_id")


def _metric_columns(record: dict[str, Any]) -> dict[str, float]:
    """``{which}_{protocol}_{metric}`` → value for every split, protocol and metric (``n_users`` left out)."""
    return {f"{which}_{protocol}_{name}": float(value)
            for which, by_protocol in record.get("metrics", {}).items()
            for protocol, metrics in by_protocol.items()
            for name, value in metrics.items() if name != "n_users"}


def results_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: ``label, model, dataset, heads, experts, seed, run_id``, then ``samples_step``,
    ``best_epoch``, ``epochs_run``, ``seconds``, ``seconds_per_epoch`` (the median training epoch) and every
    metric as ``{valid|test}_{protocol}_{metric}``
    (e.g. ``test_full_NDCG@20``, ``test_sampled_NDCG@10`` and its cohort std ``test_sampled_NDCG@10_std``).
    ``experts`` is 1 for FAME w/o MoE and empty for models without experts."""
    rows = []
    for record in records:
        config = record.get("model_config", {})
        rows.append({
            "label": record.get("label") or label_for(record["model"], config),
            "model": record["model"],
            "dataset": record["dataset"],
            "heads": config.get("n_heads"),
            "experts": config.get("n_experts"),
            "seed": record.get("seed"),
            "run_id": record.get("run_id"),
            "samples_step": record.get("samples_step"),
            "best_epoch": record.get("best_epoch"),
            "epochs_run": record.get("epochs_run"),
            "seconds": record.get("timings", {}).get("total_seconds"),
            "seconds_per_epoch": record.get("timings", {}).get("train_seconds_per_epoch_median"),
            **_metric_columns(record),
        })
    frame = pd.DataFrame(rows, columns=None if rows else list(ID_COLUMNS))
    for column in ("heads", "experts", "seed", "samples_step", "best_epoch", "epochs_run"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def summary_table(frame: pd.DataFrame, metrics: Iterable[str], protocol: str = "full",
                  which: str = "test") -> pd.DataFrame:
    """Mean ± std over seeds per (dataset, label): index (dataset, label), columns ``heads``, ``experts``,
    ``n_seeds`` and for each metric ``m`` (mean), ``m_std`` (sample std over seeds; NaN with one seed)
    and, for the sampled protocol, ``m_cohort_std`` (the mean over seeds of the std over cohorts).

    Rows keep the order of first appearance. A (dataset, label) group mixing several H or N (e.g. a whole
    sweep) is an error: pass the table runs only.
    """
    metrics = list(metrics)
    columns = {m: f"{which}_{protocol}_{m}" for m in metrics}
    missing = [c for c in columns.values() if c not in frame]
    if missing:
        available = sorted(c for c in frame.columns if c.startswith(f"{which}_"))
        raise KeyError(f"summary_table: no column(s) {missing}; available: {available}")
    frame = frame.drop_duplicates("run_id") if "run_id" in frame else frame
    rows = []
    for (dataset, label), group in frame.groupby(["dataset", "label"], sort=False):
        for field in ("heads", "experts"):
            values = group[field].dropna().unique()
            if len(values) > 1:
                raise ValueError(f"summary_table: the {label!r} runs on {dataset!r} mix {field} "
                                 f"{sorted(int(v) for v in values)}; pass one configuration per label")
        row: dict[str, Any] = {"dataset": dataset, "label": label, "heads": group["heads"].iloc[0],
                               "experts": group["experts"].iloc[0], "n_seeds": int(group["seed"].nunique())}
        for metric, column in columns.items():
            values = group[column].astype(float)
            row[metric] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
            if f"{column}_std" in group:
                row[f"{metric}_cohort_std"] = group[f"{column}_std"].astype(float).mean()
        rows.append(row)
    table = pd.DataFrame(rows).set_index(["dataset", "label"])
    for column in ("heads", "experts"):
        table[column] = table[column].astype("Int64")
    return table


def format_summary(table: pd.DataFrame, metrics: Iterable[str], digits: int = 4) -> pd.DataFrame:
    """``summary_table`` as text: "mean ± std" per metric ("mean" alone with one seed)."""
    def cell(mean: float, std: float) -> str:
        return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"

    return pd.DataFrame({m: [cell(a, b) for a, b in zip(table[m], table[f"{m}_std"])] for m in metrics},
                        index=table.index)
