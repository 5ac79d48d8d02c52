"""Training objectives shared by the models: full softmax cross-entropy over items 1..n_items at the
target positions (fame.md §4.4) and BCE with sampled negatives (Kang / ICLRec / MOJITO)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossPositions = Literal["all", "last"]


def target_positions(targets: Tensor, positions: LossPositions = "all") -> Tensor:
    """[B, L] targets → [B, L] bool: the positions that carry a loss (non-pad; only the last with 'last')."""
    if positions not in ("all", "last"):
        raise ValueError(f"loss_positions must be 'all' or 'last', got {positions!r}")
    mask = targets > 0
    if positions == "last":
        last = torch.zeros_like(mask)
        last[:, -1] = True
        mask = mask & last
    return mask


def item_cross_entropy(states: Tensor, item_table: Tensor, targets: Tensor) -> Tensor:
    """Mean softmax CE over items 1..n_items: ``states`` [P, d] scored against ``item_table``
    [n_items + 1, d] without its padding row 0, ``targets`` [P] in 1..n_items. Softmax in fp32."""
    logits = states @ item_table[1:].T                                     # [P, n_items]
    return F.cross_entropy(logits.float(), targets - 1)


def bce_with_negatives(pos: Tensor, neg: Tensor) -> Tensor:
    """-log σ(pos) - Σ_k log(1 - σ(neg_k)), averaged over samples. ``pos`` [P], ``neg`` [P, K]."""
    return -(F.logsigmoid(pos.float()) + F.logsigmoid(-neg.float()).sum(-1)).mean()
