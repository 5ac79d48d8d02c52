"""The batch: a small dataclass of device tensors that every model reads what it needs from."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """Left-padded sequences and what goes with them; ``B`` samples, ``L`` positions, ``F`` time features.

    - ``users``: [B] user ids (1-based).
    - ``items``: [B, L] input item ids, 0 = padding on the left; position L-1 is the most recent item.
    - ``targets``: [B, L] the next item at every position (0 = no target). For evaluation sets the last
      column is the held-out item.
    - ``time_feats``: [B, L, F] calendar features of the input items (zeros at padding), or None.
    - ``target_time_feats``: [B, L, F] calendar features of the targets, or None.
    - ``negatives``: [B, L, K] sampled negative items for BCE-style losses, or None (filled by the trainer).
    - ``timestamps``: [B, L] int64 unix seconds of the input items (0 at padding), or None (TiSASRec's
      time intervals; datasets without timestamps have none).
    """

    users: Tensor
    items: Tensor
    targets: Tensor
    time_feats: Tensor | None = None
    target_time_feats: Tensor | None = None
    negatives: Tensor | None = None
    timestamps: Tensor | None = None

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def device(self) -> torch.device:
        return self.items.device

    @property
    def last_targets(self) -> Tensor:
        """[B] the target at the last position (the held-out item of an evaluation set)."""
        return self.targets[:, -1]

    def select(self, index: Tensor) -> "Batch":
        """The samples at ``index`` ([b] long, on the batch's device), as a new Batch."""
        return Batch(**{f.name: _take(getattr(self, f.name), index) for f in fields(self)})

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{f.name: _move(getattr(self, f.name), device) for f in fields(self)})

    def with_negatives(self, negatives: Tensor) -> "Batch":
        return replace(self, negatives=negatives)


def _take(t: Tensor | None, index: Tensor) -> Tensor | None:
    return None if t is None else t.index_select(0, index)


def _move(t: Tensor | None, device: torch.device | str) -> Tensor | None:
    return None if t is None else t.to(device)
