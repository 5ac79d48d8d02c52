"""Model registry: a name → (config dataclass, model class); every class builds itself from a split."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data.sequences import SplitData
from .base import SequentialModel
from .fame import Fame, FameConfig
from .mojito import Mojito, MojitoConfig
from .popularity import MostPopular, MostPopularConfig
from .sasrec import SASRec, SASRecConfig


@dataclass(frozen=True)
class ModelEntry:
    config: type
    model: type[SequentialModel]
    description: str


MODELS: dict[str, ModelEntry] = {
    "pop": ModelEntry(MostPopularConfig, MostPopular, "most popular items (training counts)"),
    "sasrec": ModelEntry(SASRecConfig, SASRec, "SASRec (ICLRec style), CE over all items or BCE"),
    "fame": ModelEntry(FameConfig, Fame, "FAME: facet-aware multi-head prediction, MoE queries in the last layer"),
    "mojito": ModelEntry(MojitoConfig, Mojito, "MOJITO: time-aware attention mixtures + long-term attentive FISM"),
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
