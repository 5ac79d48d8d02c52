"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional Transformer trained on the cloze task (docs/baselines.md §2).

- Training: each training sequence (the last L items the user's training part ends with) has each real item
  replaced by a mask token with probability ``mask_prob`` (at least one per sequence); the model predicts the
  original items at the masked positions with a softmax over the catalogue (the fused ``item_cross_entropy``).
- Inference: the mask token is appended after the input (the oldest item drops out of a full window) and the
  scores are read at that slot.

The encoder is SASRec's (``SequenceEncoder``: embedding + post-LN blocks, on the real tokens) with a
bidirectional mask (``TokenLayout.from_items(causal=False)``); BERT's output head (dense, GELU, LayerNorm)
and a per-item output bias come after it. Input and output item embeddings are shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput, SequentialModel
from .layers import FFNKind, PositionKind, init_normal
from .losses import candidate_scores, item_cross_entropy
from .sasrec import SequenceEncoder
from .tokens import TokenLayout


@dataclass(frozen=True)
class BERT4RecConfig:
    """The backbone fields as SASRec's (``BackboneConfig``), plus the cloze masking probability.

    ``mask_prob`` 0.2: Petrov & Macdonald's implementation (and BERT4Rec's ML-1M/ML-20m value; 0.6 for Beauty
    in the original paper). Dropout 0.2: RecBole's BERT4Rec; the profiles set the shared backbone's dropout."""

    d: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    max_len: int = 50
    attn_dropout: float = 0.2
    hidden_dropout: float = 0.2
    ffn: FFNKind = "gelu_4d"
    positions: PositionKind = "slot"
    mask_prob: float = 0.2
    init_std: float = 0.02
    ln_eps: float = 1e-12
    adam_beta1: float = 0.9      # Adam's β's, read by the trainer (SequentialModel.optimizer_settings)
    adam_beta2: float = 0.999

    def __post_init__(self) -> None:
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be at least 1, got {self.n_heads}")
        for name in ("attn_dropout", "hidden_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.d % self.n_heads:
            raise ValueError(f"d={self.d} must be divisible by n_heads={self.n_heads}")
        if self.n_blocks < 1 or self.max_len < 2:
            raise ValueError(f"n_blocks must be >= 1 and max_len >= 2, got {self.n_blocks} and {self.max_len}")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must lie in (0, 1), got {self.mask_prob}")
        for name, kind in (("ffn", FFNKind), ("positions", PositionKind)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"{name} must be one of {get_args(kind)}, got {getattr(self, name)!r}")


def cloze(items: Tensor, uniforms: Tensor, p: float, mask_id: int) -> tuple[Tensor, Tensor]:
    """The cloze task of a left-padded batch ``items`` [B, L], given ``uniforms`` [B, L] in [0, 1).

    Real position j is masked when ``uniforms[j] < p``; a sequence with no masked position gets its real
    position of smallest uniform masked instead (a uniform choice). Returns (inputs [B, L]: masked positions
    set to ``mask_id``, targets [B, L]: the original item at masked positions, 0 elsewhere)."""
    real = items > 0
    chosen = (uniforms < p) & real
    pick = uniforms.masked_fill(~real, 2.0).argmin(1)                                 # [B]
    lonely = ~chosen.any(1) & real.any(1)
    chosen = chosen | (F.one_hot(pick, items.shape[1]).bool() & lonely[:, None])
    return items.masked_fill(chosen, mask_id), items.masked_fill(~chosen, 0)


def with_mask_appended(items: Tensor, mask_id: int) -> Tensor:
    """[B, L] left-padded inputs → [B, L]: the last L-1 items followed by the mask token (inference)."""
    return torch.cat([items[:, 1:], items.new_full((items.shape[0], 1), mask_id)], 1)


def training_sequences(batch: Batch) -> Tensor:
    """[B, L] the last L items of each training sequence: the input shifted left by one and the last target
    appended (a sample without a last target keeps its input)."""
    last = batch.targets[:, -1:]
    return torch.where(last > 0, torch.cat([batch.items[:, 1:], last], 1), batch.items)


class BERT4Rec(SequentialModel):
    """score(v) = <E_v, head(X_out[mask slot])> + b_v; the item table has a mask row, id n_items + 1."""

    def __init__(self, config: BERT4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config, self.n_items, self.mask_id = config, n_items, n_items + 1
        self.encoder = SequenceEncoder(config, n_items + 1, config.n_blocks)          # rows 0..n_items + 1
        self.head = nn.Sequential(nn.Linear(config.d, config.d), nn.GELU(), nn.LayerNorm(config.d, eps=config.ln_eps))
        self.bias = nn.Parameter(torch.zeros(n_items + 1))
        init_normal(self, config.init_std)

    @classmethod
    def from_split(cls, config: BERT4RecConfig, split: SplitData) -> "BERT4Rec":
        return cls(config, split.n_items)

    @property
    def item_embedding(self) -> Tensor:
        """[n_items + 1, d] the item table without the mask row (row 0 = padding)."""
        return self.encoder.embedding.item.weight[: self.n_items + 1]

    def encode(self, items: Tensor, return_attention: bool = False, last_only: bool = False
               ) -> tuple[ModelOutput, TokenLayout]:
        """Bidirectional states after the output head at the real tokens [T, d] ([B, d] with ``last_only``)."""
        layout = TokenLayout.from_items(items, packed=not return_attention, causal=False)
        out = self.encoder(items, layout, return_attention, last_only)
        out.states = self.head(out.states)
        return out, layout

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """States [B, L, d] of the inference input (the items shifted left, the mask in the last slot; maps
        over that input), or [B, 1, d] at the mask with ``last_only``."""
        out, layout = self.encode(with_mask_appended(batch.items, self.mask_id), return_attention, last_only)
        out.states = out.states[:, None] if last_only else layout.to_full(out.states)
        return out

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        last = out.states[:, -1]                                                      # [B, d]
        if candidates is None:
            return last @ self.item_embedding.T + self.bias                           # [B, V+1]
        return candidate_scores(last, self.item_embedding, candidates) + self.bias[candidates]   # [B, C]

    def loss(self, batch: Batch) -> Tensor:
        """Softmax CE over items 1..n_items at the masked positions of the cloze task."""
        seq = training_sequences(batch)                                               # [B, L]
        inputs, targets = cloze(seq, torch.rand(seq.shape, device=seq.device), self.config.mask_prob, self.mask_id)
        out, layout = self.encode(inputs)
        targets = layout.from_full(targets)                                           # [T]
        h = out.states[targets > 0]                                                   # [P, d]
        # the output bias as one more feature: [h, 1] · [E_v, b_v] = <h, E_v> + b_v
        table = torch.cat([self.item_embedding, self.bias[:, None]], 1)               # [V+1, d+1]
        return item_cross_entropy(F.pad(h, (0, 1), value=1.0), table, targets[targets > 0])
