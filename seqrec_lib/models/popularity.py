"""Most-popular baseline: every user gets the same scores, the items' training counts."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput, SequentialModel


@dataclass(frozen=True)
class MostPopularConfig:
    """No hyperparameters; counts come from the training part of the split."""


class MostPopular(SequentialModel):
    """score(v) = number of training interactions with v (items of every user's s[:-2])."""

    def __init__(self, counts: Tensor) -> None:
        super().__init__()
        self.n_items = len(counts) - 1
        self.register_buffer("counts", counts.float())

    @classmethod
    def from_split(cls, config: MostPopularConfig, split: SplitData) -> "MostPopular":
        return cls(split.valid_history.item_counts(split.n_items))

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        return ModelOutput(states=self.counts.new_zeros(len(batch), batch.items.shape[1], 0))

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        scores = self.counts.expand(len(batch), -1)
        return scores if candidates is None else scores.gather(1, candidates)

    def loss(self, batch: Batch) -> Tensor:
        raise RuntimeError("MostPopular has nothing to train; evaluate it directly")
