"""The one interface every sequential model implements, so trainer, metrics, sweeps and analysis never
special-case a model (the RecBole idea, without the framework)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ..batch import Batch

if TYPE_CHECKING:
    from ..data.sequences import SplitData


@dataclass
class ModelOutput:
    """What ``forward`` returns for a batch of ``B`` sequences of length ``L``.

    - ``states``: [B, L, d_out] the sequence representation at every position.
    - ``attention``: per layer, [B, H, L, L] post-softmax attention maps (only with ``return_attention``).
    - ``head_outputs``: per layer, [B, H, L, d_h] per-head outputs (only with ``return_attention``).
    - ``extras``: model-specific per-position tensors, e.g. FAME's ``gate`` [B, L, H] and ``router``
      [B, H, L, N]; analyses look them up by name.
    """

    states: Tensor
    attention: list[Tensor] = field(default_factory=list)
    head_outputs: list[Tensor] = field(default_factory=list)
    extras: dict[str, Tensor] = field(default_factory=dict)


class SequentialModel(nn.Module, ABC):
    """A next-item model over items 1..n_items (id 0 is padding).

    Subclasses set ``n_items`` and ``n_negatives`` (how many negatives per position their loss needs in
    ``batch.negatives``; 0 for full cross-entropy), and implement ``forward``, ``score`` and ``loss``.
    """

    n_items: int
    n_negatives: int = 0

    @abstractmethod
    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """States at every position [B, L, d_out] (+ per-layer attention maps and head outputs when asked).

        ``last_only``: the caller needs the state after the last position only (evaluation); a model may then
        return ``states`` [B, 1, d_out] and skip the rest (``score`` reads ``states[:, -1]`` either way)."""

    @abstractmethod
    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        """Scores for the item after the last position.

        Without ``candidates``: [B, n_items + 1] over the whole catalogue (column 0 is padding; the
        evaluation masks it). With ``candidates`` [B, C] item ids: [B, C].
        """

    @abstractmethod
    def loss(self, batch: Batch) -> Tensor:
        """The model's own training objective on a training batch (a scalar)."""

    def predict(self, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        """``score(forward(batch, last_only=True))``: the scores the evaluation ranks."""
        return self.score(self.forward(batch, last_only=True), batch, candidates)

    def optimizer_settings(self) -> dict[str, Any]:
        """Adam settings this model's config asks for, on top of ``TrainConfig``'s learning rate and weight
        decay: ``betas`` = (``config.adam_beta1``, ``config.adam_beta2``) where the config has them (SASRec and
        the models on its backbone, MOJITO); nothing otherwise, i.e. torch's (0.9, 0.999). The trainer builds
        its optimiser from this and writes the result into the run record (``Trainer.optimizer_kwargs``)."""
        config = getattr(self, "config", None)
        if not (hasattr(config, "adam_beta1") and hasattr(config, "adam_beta2")):
            return {}
        return {"betas": (float(config.adam_beta1), float(config.adam_beta2))}

    def start_epoch(self, epoch: int, split: SplitData | None = None) -> None:
        """Called by the trainer before each training epoch (0-based), in training mode, with the ``split`` it
        trains on. Default: nothing.

        Models with per-epoch state override it (MOJITO resamples its FISM items; ICLRec clusters the training
        sequences' representations into intents); it must draw its randomness from a generator seeded by
        ``epoch`` so runs are reproducible, and leave the model in the mode it found it in. A resumed run calls
        it again for the epoch it continues with, so state it recomputes from the weights needs no saving.
        """
