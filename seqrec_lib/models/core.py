"""CORE (Hou et al., SIGIR 2022): the session representation lies in the item embedding space itself
(docs/baselines.md §9; official code RUCAIBox/CORE ``core_trm.py``, also RecBole's ``CORE``).

Representation-consistent encoder (RCE), at every position t of a sequence with item vectors x_i = E[s_i]:

    x̃ = Dropout_sess(x)                                              [B, L, d]
    H = Transformer(x̃)   (SASRec's causal encoder: x̃ + P, LN, dropout, post-LN blocks)     [B, L, d]
    α_{t,i} = softmax_{i ≤ t, real}(w · H_i + b)                      [B, L, L]
    h_t = Σ_{i ≤ t} α_{t,i} x̃_i                                        [B, L, d]

Robust distance measuring (RDM): cosine scores over a temperature, with dropout on the item table in training,

    score(v | t) = ⟨h_t / ‖h_t‖, Ẽ_v / ‖Ẽ_v‖⟩ / τ,    Ẽ = Dropout_item(E) (training) or E (evaluation),

and softmax cross-entropy over items 1..n_items at every target position (the fused ``item_cross_entropy``).

Paper / code / ours: the RCE weights (transformer, linear map to one logit, softmax over the real positions), the
weighted sum of the session-dropped embeddings, cosine/τ, dropouts on the session's embeddings and on the
whole item table, τ = 0.07, ``sess_dropout`` = ``item_dropout`` = 0.2 and the transformer settings (2 blocks,
2 heads, GELU 4d, dropout 0.5, LayerNorm ε 1e-12) are the code's; the item table uniform in ±1/√d, the
transformer N(0, 0.02) is the CORE repository's initialisation (RecBole's re-draws every parameter uniformly).
Ours: a target at every position (the repository's protocol; RecBole trains one sample per prefix, the next item
after its last position: with ``positions='from_start'`` the state at t is exactly that prefix's, tested);
positions as the backbone's (SASRec's slot positions by default; the code counts from the first item,
``from_start``); only the transformer variant (CORE-trm), not the mean-pooling CORE-ave."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput, SequentialModel
from .layers import Int16Dropout, init_normal, masked_softmax
from .losses import candidate_scores, item_cross_entropy, target_positions
from .sasrec import BackboneConfig, SequenceEncoder
from .tokens import TokenLayout


@dataclass(frozen=True)
class COREConfig(BackboneConfig):
    """The backbone (d 64, 2 blocks, 2 heads, dropout 0.5: also CORE's RecBole defaults) plus CORE's RDM."""

    sess_dropout: float = 0.2     # on the session's item embeddings (input of both the transformer and the sum)
    item_dropout: float = 0.2     # on the item table the training CE scores against
    temperature: float = 0.07     # τ

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("sess_dropout", "item_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class CORE(SequentialModel):
    """CORE-trm: ``states`` are the unit session vectors h_t / ‖h_t‖ [B, L, d] (or [B, 1, d] with ``last_only``);
    scores are their cosines with the item embeddings over τ."""

    packed: bool = True     # as SASRec's: compute on the real tokens only (False: every padded position)

    def __init__(self, config: COREConfig, n_items: int) -> None:
        super().__init__()
        self.config, self.n_items = config, n_items
        self.encoder = SequenceEncoder(config, n_items, config.n_blocks)        # its item table is E
        self.logit = nn.Linear(config.d, 1)                                      # w, b: one logit per position
        self.item_dropout = Int16Dropout(config.item_dropout)
        init_normal(self, config.init_std)
        bound = 1.0 / math.sqrt(config.d)
        nn.init.uniform_(self.encoder.embedding.item.weight.data[1:], -bound, bound)   # row 0 (padding) stays 0

    @classmethod
    def from_split(cls, config: COREConfig, split: SplitData) -> "CORE":
        return cls(config, split.n_items)

    @property
    def item_embedding(self) -> Tensor:
        """[n_items + 1, d] E (row 0 = padding), summed by the encoder and scored against."""
        return self.encoder.embedding.item.weight

    def encode(self, batch: Batch, return_attention: bool = False, last_only: bool = False
               ) -> tuple[ModelOutput, TokenLayout]:
        """Session vectors h/‖h‖ at the real tokens [T, d] (at each sequence's last item [B, d] with
        ``last_only``), and the layout. The transformer runs on every token either way: α needs all of H."""
        layout = TokenLayout.from_items(batch.items, self.packed and not return_attention)
        x = layout.dropout(self.item_embedding[layout.from_full(batch.items)], self.config.sess_dropout,
                           self.training)                                                     # x̃ [T, d]
        out = self.encoder(batch.items, layout, return_attention, vectors=x)                  # H [T, d]
        logits = layout.pad(self.logit(out.states).squeeze(-1))[:, None, None, :]           # [B, 1, 1, W]
        mask = layout.attention[:, :, -1:] if last_only else layout.attention                # i ≤ t, real
        alpha = masked_softmax(logits, mask)[:, 0]                                           # [B, W or 1, W]
        h = alpha @ layout.pad(x)                                                            # [B, W or 1, d]
        out.states = F.normalize(h[:, 0] if last_only else layout.unpad(h), dim=-1)          # [B or T, d]
        return out, layout

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        out, layout = self.encode(batch, return_attention, last_only)
        out.states = out.states[:, None] if last_only else layout.to_full(out.states)       # [B, 1 or L, d]
        return out

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        last = out.states[:, -1] / self.config.temperature                                   # [B, d]
        table = F.normalize(self.item_embedding, dim=-1)                                     # [V+1, d], no dropout
        return last @ table.T if candidates is None else candidate_scores(last, table, candidates)

    def loss(self, batch: Batch) -> Tensor:
        out, layout = self.encode(batch)
        where = layout.from_full(target_positions(batch.targets, self.config.loss_positions))
        h, targets = out.states[where], layout.from_full(batch.targets)[where]               # [P, d], [P]
        table = F.normalize(self.item_dropout(self.item_embedding), dim=-1)                 # Ẽ/‖Ẽ‖ [V+1, d]
        return item_cross_entropy(h / self.config.temperature, table, targets)
