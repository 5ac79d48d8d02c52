"""Model registry: a name → (config dataclass, model class); every class builds itself from a split."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..data.sequences import SplitData
from .base import SequentialModel
from .bert4rec import BERT4Rec, BERT4RecConfig
from .cl4srec import CL4SRec, CL4SRecConfig
from .core import CORE, COREConfig
from .duorec import DuoRec, DuoRecConfig
from .fame import Fame, FameConfig
from .gru4rec import GRU4Rec, GRU4RecConfig
from .iclrec import ICLRec, ICLRecConfig
from .mojito import Mojito, MojitoConfig
from .popularity import MostPopular, MostPopularConfig
from .sasrec import SASRec, SASRecConfig
from .tisasrec import TiSASRec, TiSASRecConfig


MOJITO_ABLATIONS: dict[str, dict[str, Any]] = {
    "w/o long-term": {"lambda_long": 0.0},               # no attentive-FISM term (λ = 0), docs/mojito.md §7-8
    "w/o time context": {"time_context": False},         # context embedding zeroed, inputs and targets (§3)
    "batch pairing": {"faithful_batch_pairing": True},   # the official cross-user pairing (§5.2, M1)
    "w/o attention noise": {"attn_noise": False},        # no σ²·ε, training or evaluation (§5.1, M3)
}
"""MOJITO's ablations, each one switch of ``MojitoConfig``: the name in the label → the setting."""


def mojito_label(fields: Mapping[str, Any]) -> str:
    """"MOJITO", or "MOJITO (<ablation>, ...)" for the ``MOJITO_ABLATIONS`` a config (its fields) has on."""
    on = [name for name, setting in MOJITO_ABLATIONS.items()
          if all(k in fields and fields[k] == v for k, v in setting.items())]
    return f"MOJITO ({', '.join(on)})" if on else "MOJITO"


@dataclass(frozen=True)
class ModelEntry:
    """``label``: the model's name in tables and figures, or the rule that names a configuration of it from its
    fields (SASRec-CE / SASRec-BCE by the loss, FAME w/o MoE at N = 1, MOJITO's ablations); empty: the registry name.
    ``needs_time``: the model reads the time of the inputs, so it trains on datasets with timestamps, in
    MOJITO's setting (its windows and protocols; ``experiments.single_run_spec``)."""

    config: type
    model: type[SequentialModel]
    description: str
    label: str | Callable[[Mapping[str, Any]], str] = ""
    needs_time: bool = False
    pretraining: Callable[[Any], tuple[str, Any]] | None = None
    """The run a configuration starts from, as (model name, its config): FAME fine-tunes the SASRec-CE with its
    backbone and heads (docs/fame.md §8); None: trained from scratch."""

    def label_for(self, fields: Mapping[str, Any], name: str) -> str:
        """The table label of a configuration (its fields) of the model registered as ``name``."""
        return self.label(fields) if callable(self.label) else self.label or name


MODELS: dict[str, ModelEntry] = {
    "pop": ModelEntry(MostPopularConfig, MostPopular, "most popular items (training counts)", label="Most popular"),
    "sasrec": ModelEntry(SASRecConfig, SASRec, "SASRec (ICLRec style), CE over all items or BCE",
                         label=lambda f: "SASRec-CE" if f["loss"] == "ce" else "SASRec-BCE"),
    "fame": ModelEntry(FameConfig, Fame, "FAME: facet-aware multi-head prediction, MoE queries in the last layer",
                       label=lambda f: "FAME w/o MoE" if f["n_experts"] == 1 else "FAME",
                       pretraining=lambda config: ("sasrec", config.sasrec_config())),
    "mojito": ModelEntry(MojitoConfig, Mojito, "MOJITO: time-aware attention mixtures + long-term attentive FISM",
                         label=mojito_label, needs_time=True),
    "gru4rec": ModelEntry(GRU4RecConfig, GRU4Rec, "GRU4Rec (RecBole form): GRU over the items, CE at every position",
                          label="GRU4Rec"),
    "bert4rec": ModelEntry(BERT4RecConfig, BERT4Rec, "BERT4Rec: bidirectional Transformer, cloze training",
                           label="BERT4Rec"),
    "tisasrec": ModelEntry(TiSASRecConfig, TiSASRec, "TiSASRec: SASRec with relative time-interval attention",
                           label="TiSASRec", needs_time=True),
    "cl4srec": ModelEntry(CL4SRecConfig, CL4SRec, "CL4SRec: SASRec-CE + contrastive loss on augmented views",
                          label="CL4SRec"),
    "iclrec": ModelEntry(ICLRecConfig, ICLRec, "ICLRec: CL4SRec + contrast with k-means intent prototypes "
                         "(re-clustered every epoch)", label="ICLRec"),
    "duorec": ModelEntry(DuoRecConfig, DuoRec, "DuoRec: SASRec-CE + contrast of a dropout view with a same-target "
                         "sequence", label="DuoRec"),
    "core": ModelEntry(COREConfig, CORE, "CORE: session = attention-weighted sum of its item embeddings, "
                       "cosine / τ scores", label="CORE"),
}


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def make_config(name: str, **overrides: Any) -> Any:
    """The model's config dataclass with ``overrides`` (unknown keys are an error naming them)."""
    cls = get_entry(name).config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"{name} has no hyperparameter(s) {unknown}; known: {sorted(known)}")
    return cls(**overrides)


def build_model(name: str, split: SplitData, config: Any | None = None) -> SequentialModel:
    """Instantiate model ``name`` for ``split`` (its default config when ``config`` is None)."""
    entry = get_entry(name)
    config = entry.config() if config is None else config
    if not isinstance(config, entry.config):
        raise TypeError(f"model {name!r} expects a {entry.config.__name__}, got {type(config).__name__}")
    return entry.model.from_split(config, split)
