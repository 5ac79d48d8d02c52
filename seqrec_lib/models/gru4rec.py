"""GRU4Rec (Hidasi et al., ICLR 2016) in the sequential-recommendation form of RecBole, the implementation
behind FAME's GRU4Rec row (docs/baselines.md §1): item embedding → dropout → a GRU over each sequence's real
items → a linear map back to the embedding width → scores against the shared item table, trained with
full softmax cross-entropy at every position (the fused ``item_cross_entropy``).

Left-padded batches are run as packed sequences, so the GRU starts at each sequence's first real item and
padding never enters its state (exactly as if every sequence ran alone)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput, SequentialModel
from .losses import candidate_scores, item_cross_entropy
from .tokens import TokenLayout


@dataclass(frozen=True)
class GRU4RecConfig:
    """RecBole's defaults (embedding 64, hidden 128, one layer, dropout 0.3 on the embeddings)."""

    d: int = 64
    hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.3
    max_len: int = 50
    adam_beta1: float = 0.9      # Adam's β's, read by the trainer (SequentialModel.optimizer_settings)
    adam_beta2: float = 0.999

    def __post_init__(self) -> None:
        for name in ("d", "hidden", "n_layers", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"GRU4RecConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"GRU4RecConfig.dropout must lie in [0, 1), got {self.dropout}")


class GRU4Rec(SequentialModel):
    """score(v | s_1..s_t) = <E_v, W h_t> with h_t the GRU state after s_t; E shared by input and output."""

    def __init__(self, config: GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config, self.n_items = config, n_items
        self.item = nn.Embedding(n_items + 1, config.d, padding_idx=0)
        self.gru = nn.GRU(config.d, config.hidden, config.n_layers, batch_first=True, bias=True)
        self.out = nn.Linear(config.hidden, config.d)
        # RecBole's initialisation: embedding Xavier-normal (padding row zeroed), GRU weights Xavier-uniform,
        # biases and the output map torch's defaults
        nn.init.xavier_normal_(self.item.weight)
        with torch.no_grad():
            self.item.weight[0].zero_()
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)

    @classmethod
    def from_split(cls, config: GRU4RecConfig, split: SplitData) -> "GRU4Rec":
        return cls(config, split.n_items)

    @property
    def item_embedding(self) -> Tensor:
        """[n_items + 1, d] the shared item table (row 0 = padding)."""
        return self.item.weight

    def encode(self, items: Tensor) -> tuple[Tensor, Tensor, TokenLayout]:
        """items [B, L] → (states at the real tokens [T, d], state after each sequence's last item [B, d],
        layout). The GRU runs on packed sequences: token t of row b is step t - start(b) of that row."""
        layout = TokenLayout.from_items(items)
        x = layout.dropout(self.item(layout.from_full(items)), self.config.dropout, self.training)   # [T, d]
        B, W = layout.batch, layout.width
        lengths = (items > 0).sum(1)                                                  # [B]
        starts = torch.cumsum(lengths, 0) - lengths                                   # [B] first token of row
        step = torch.arange(layout.n_tokens, device=items.device) - starts[layout.rows]   # [T]
        right = layout.rows * W + step                                                # [T] in right-padded [B, W]
        padded = x.new_zeros(B * W, x.shape[1]).index_copy(0, right, x).view(B, W, -1)   # [B, W, d]
        packed = pack_padded_sequence(padded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        seq, h_n = self.gru(packed)
        seq = pad_packed_sequence(seq, batch_first=True, total_length=W)[0]           # [B, W, hidden]
        states = self.out(seq.reshape(B * W, -1).index_select(0, right))              # [T, d]
        last = self.out(h_n[-1]) * (lengths > 0)[:, None]                              # [B, d]
        return states, last, layout

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """states [B, L, d] (zeros at padding), or [B, 1, d] after the last item with ``last_only``. A GRU
        has no attention maps: ``return_attention`` returns none."""
        states, last, layout = self.encode(batch.items)
        return ModelOutput(states=last[:, None] if last_only else layout.to_full(states))

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        last = out.states[:, -1]                                                      # [B, d]
        if candidates is None:
            return last @ self.item_embedding.T                                       # [B, V+1]
        return candidate_scores(last, self.item_embedding, candidates)                # [B, C]

    def loss(self, batch: Batch) -> Tensor:
        """Softmax CE over items 1..n_items at every non-padded target position."""
        states, _, layout = self.encode(batch.items)
        targets = layout.from_full(batch.targets)                                     # [T]
        where = targets > 0
        return item_cross_entropy(states[where], self.item_embedding, targets[where])
