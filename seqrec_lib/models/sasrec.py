"""SASRec as in ICLRec/S3-Rec (docs/sasrec.md): learned positions, post-LN blocks, shared input and
output item embeddings, trained with full cross-entropy at every position (default) or BCE with one
sampled negative per position."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import SplitData
from ..records import LATE_FIELD
from .base import ModelOutput, SequentialModel
from .layers import FFNKind, ItemSequenceEmbedding, PositionKind, TransformerBlock, init_normal
from .losses import LossPositions, bce_with_negatives, candidate_scores, item_cross_entropy, target_positions
from .tokens import TokenLayout


@dataclass(frozen=True)
class BackboneConfig:
    """The Transformer backbone shared by SASRec and FAME; the defaults are ICLRec's (docs/sasrec.md §3)."""

    d: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    max_len: int = 50
    attn_dropout: float = 0.5
    hidden_dropout: float = 0.5
    ffn: FFNKind = "gelu_4d"
    positions: PositionKind = "slot"
    loss_positions: LossPositions = "all"
    init_std: float = 0.02
    ln_eps: float = 1e-12
    # Adam's β's (SequentialModel.optimizer_settings): torch's and ICLRec's (0.9, 0.999) by default; SASRec's
    # and MOJITO's official code use β2 = 0.98 (the MOJITO table's rows, experiments.TIME_ADAM). Late fields:
    # at their defaults they stay out of the run keys, so the records made before them keep theirs.
    adam_beta1: float = field(default=0.9, metadata=LATE_FIELD)
    adam_beta2: float = field(default=0.999, metadata=LATE_FIELD)

    def __post_init__(self) -> None:
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            raise ValueError(f"Adam's betas must lie in [0, 1), got ({self.adam_beta1}, {self.adam_beta2})")
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be at least 1, got {self.n_heads}")
        for name in ("attn_dropout", "hidden_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.d % self.n_heads:
            raise ValueError(f"d={self.d} must be divisible by n_heads={self.n_heads}")
        if self.n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {self.n_blocks}")
        for name, kind in (("ffn", FFNKind), ("positions", PositionKind), ("loss_positions", LossPositions)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"{name} must be one of {get_args(kind)}, got {getattr(self, name)!r}")

    def backbone(self) -> dict[str, Any]:
        """The backbone fields as keyword arguments (to build a config of another model on them)."""
        return {f.name: getattr(self, f.name) for f in fields(BackboneConfig)}


@dataclass(frozen=True)
class SASRecConfig(BackboneConfig):
    """SASRec: the backbone plus its loss, CE over all items (default) or BCE with one negative."""

    loss: Literal["ce", "bce"] = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("ce", "bce"):
            raise ValueError(f"loss must be 'ce' or 'bce', got {self.loss!r}")


class SequenceEncoder(nn.Module):
    """Embedding plus ``n_blocks`` Transformer blocks on the real tokens: [B, L] ids → states [T, d]
    (``layout``'s tokens), or [B, d] at each sequence's last item with ``last_only`` (evaluation). ``vectors``
    [T, d]: item vectors to embed instead of the table's rows (``ItemSequenceEmbedding``; CORE's)."""

    def __init__(self, config: SASRecConfig, n_items: int, n_blocks: int) -> None:
        super().__init__()
        c = config
        self.embedding = ItemSequenceEmbedding(n_items, c.d, c.max_len, c.hidden_dropout, c.ln_eps, c.positions)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d, c.n_heads, c.attn_dropout, c.hidden_dropout, c.ffn, c.ln_eps)
            for _ in range(n_blocks)
        )

    def forward(self, items: Tensor, layout: TokenLayout, return_attention: bool = False,
                last_only: bool = False, vectors: Tensor | None = None) -> ModelOutput:
        x = self.embedding(items, layout, vectors)                                # [T, d]
        out = ModelOutput(states=x)
        for i, block in enumerate(self.blocks):
            x, probs, heads = block(x, layout, return_attention, last_only and i == len(self.blocks) - 1)
            if return_attention:
                out.attention.append(probs)
                out.head_outputs.append(heads)
        if last_only and not self.blocks:
            x = layout.last_tokens(x)
        out.states = x
        return out


class SASRec(SequentialModel):
    """Self-attentive sequential recommendation; score(v) = <E_v, X_out[-1]>.

    ``packed`` (not a hyperparameter: results are the same): compute on the real tokens only; False computes
    every padded position too, the reference the tests compare the packed path against.
    """

    packed: bool = True

    def __init__(self, config: SASRecConfig, n_items: int) -> None:
        super().__init__()
        self.config, self.n_items = config, n_items
        self.n_negatives = 1 if config.loss == "bce" else 0
        self.encoder = SequenceEncoder(config, n_items, config.n_blocks)
        init_normal(self, config.init_std)

    @classmethod
    def from_split(cls, config: SASRecConfig, split: SplitData) -> "SASRec":
        return cls(config, split.n_items)

    @property
    def item_embedding(self) -> Tensor:
        """[n_items + 1, d] the shared item table (row 0 = padding)."""
        return self.encoder.embedding.item.weight

    def encode(self, batch: Batch, return_attention: bool = False, last_only: bool = False
               ) -> tuple[ModelOutput, TokenLayout]:
        """States at the real tokens [T, d] (or [B, d] with ``last_only``) and their layout."""
        layout = TokenLayout.from_items(batch.items, self.packed and not return_attention)
        return self.encoder(batch.items, layout, return_attention, last_only), layout

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        out, layout = self.encode(batch, return_attention, last_only)
        out.states = out.states[:, None] if last_only else layout.to_full(out.states)   # [B, 1 or L, d]
        return out

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        last = out.states[:, -1]                                                  # [B, d]
        if candidates is None:
            return last @ self.item_embedding.T                                   # [B, V+1]
        return candidate_scores(last, self.item_embedding, candidates)            # [B, C]

    def loss(self, batch: Batch) -> Tensor:
        out, layout = self.encode(batch)
        return self.next_item_loss(out.states, layout, batch)

    def next_item_loss(self, states: Tensor, layout: TokenLayout, batch: Batch) -> Tensor:
        """The objective on the states [T, d] of ``encode``: CE over all items (or BCE) at the target positions
        (DuoRec adds its contrastive terms to it, on the same pass)."""
        targets = layout.from_full(batch.targets)                                 # [T]
        where = layout.from_full(target_positions(batch.targets, self.config.loss_positions))
        h, targets = states[where], targets[where]                                # [P, d], [P]
        if self.config.loss == "ce":
            return item_cross_entropy(h, self.item_embedding, targets)
        if batch.negatives is None:
            raise ValueError("SASRec with loss='bce' needs batch.negatives [B, L, 1] (the trainer samples them)")
        E = self.item_embedding
        pos = candidate_scores(h, E, targets[:, None])[:, 0]                      # [P]
        neg = candidate_scores(h, E, layout.from_full(batch.negatives)[where])    # [P, K]
        return bce_with_negatives(pos, neg)
