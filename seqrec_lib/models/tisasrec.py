"""TiSASRec (Li, Wang, McAuley, WSDM 2020): self-attention with relative time-interval embeddings, the
time-aware baseline of MOJITO's comparison (docs/baselines.md §3).

For the items i, j of one input window, with timestamps t (seconds), TiSASRec personalises time by the
window's smallest positive gap s between consecutive items and clips the interval at ``time_span`` k:

    p_i = round((t_i - t_first) / s),    r_ij = min(|p_i - p_j|, k)        (``time_intervals``)

and adds learned interval embeddings R^K, R^V (k + 1 rows each, shared by the blocks as in TiSASRec) to the
keys and values of every head:

    A_ij = softmax_j((Q_i · K_j + Q_i · R^K[r_ij]) / √d′ + mask),    out_i = Σ_j A_ij (V_j + R^V[r_ij])

Everything else is our SASRec (embedding with learned positions at the input, post-LN blocks, feed-forward,
losses; ``sasrec.py``), so TiSASRec and SASRec differ only in the interval terms. The interval terms are
computed without forming the [B, W, W, d] interval embeddings: Q_i · R^K[r] for every r, then picked by r_ij;
and the attention mass per interval (scatter-add over j) times R^V."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput
from .layers import FeedForward, ItemSequenceEmbedding, MultiHeadSelfAttention, init_normal, masked_softmax
from .sasrec import SASRec, SASRecConfig
from .tokens import TokenLayout


@dataclass(frozen=True)
class TiSASRecConfig(SASRecConfig):
    """SASRec's fields, BCE with one negative by default (TiSASRec's loss), and the interval clip k."""

    loss: Literal["ce", "bce"] = "bce"
    time_span: int = 256   # k: TiSASRec's default (and the ``timespan`` of MOJITO's TiSASRec hook)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.time_span < 1:
            raise ValueError(f"time_span must be at least 1, got {self.time_span}")


def time_intervals(timestamps: Tensor, real: Tensor, span: int) -> Tensor:
    """timestamps [B, W] int64 seconds (oldest first), real [B, W] bool (real items on the right) →
    r [B, W, W] long in 0..span: TiSASRec's clipped personal intervals; 0 where i or j is padding.

    The scale s of a row is its smallest positive gap between consecutive real items (1 when there is none)."""
    none = torch.iinfo(torch.int64).max
    gaps = timestamps[:, 1:] - timestamps[:, :-1]                                   # [B, W-1]
    gaps = gaps.masked_fill(~(real[:, 1:] & real[:, :-1]) | (gaps <= 0), none)
    scale = gaps.min(1).values if gaps.shape[1] else torch.full_like(timestamps[:, 0], none)
    scale = torch.where(scale == none, torch.ones_like(scale), scale)              # [B]
    first = timestamps.masked_fill(~real, none).min(1).values                       # [B]
    p = torch.round((timestamps - first[:, None]).double() / scale[:, None].double())   # [B, W]
    r = (p[:, :, None] - p[:, None, :]).abs().clamp(max=span).long()                # [B, W, W]
    return r.masked_fill(~(real[:, :, None] & real[:, None, :]), 0)


class TimeIntervalAttention(MultiHeadSelfAttention):
    """SASRec's attention (its Q, K, V, output map, dropout and post-LN) plus the interval terms.

    forward: X [T, d], r [B, W, W], the interval tables R^K, R^V [k + 1, d] → (Y [Tq, d], A [B, H, Wq, W] or
    None, O [B, H, Wq, d′] or None), with O = A V + Σ_j A_ij R^V[r_ij] per head; ``last_only``: the last
    token's query only (Tq = B, Wq = 1)."""

    def forward(self, x: Tensor, layout: TokenLayout, intervals: Tensor, interval_key: Tensor,
                interval_value: Tensor, return_attention: bool = False, last_only: bool = False
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        H, e = self.n_heads, self.d_head
        k, v = self.split_heads(layout.pad(self.key(x))), self.split_heads(layout.pad(self.value(x)))  # [B, H, W, e]
        if last_only:
            x = layout.last_tokens(x)                                                   # [B, d]
            q, mask, r = self.split_heads(self.query(x)[:, None]), layout.attention[:, :, -1:], intervals[:, -1:]
        else:
            q, mask, r = self.split_heads(layout.pad(self.query(x))), layout.attention, intervals
        rk = interval_key.view(-1, H, e).transpose(0, 1)                                # [H, k+1, e]
        rv = interval_value.view(-1, H, e).transpose(0, 1)                              # [H, k+1, e]
        index = r[:, None].expand(-1, H, -1, -1)                                        # [B, H, Wq, W]
        relative = (q @ rk.transpose(-1, -2)[None]).gather(-1, index)                  # Q_i · R^K[r_ij]
        probs = masked_softmax((q @ k.transpose(-1, -2) + relative) / math.sqrt(e), mask)   # [B, H, Wq, W]
        dropped = (F.dropout(probs, self.p_attn, self.training) if last_only
                   else layout.attention_dropout(probs, self.p_attn, self.training))
        mass = torch.zeros(*dropped.shape[:-1], rk.shape[1], dtype=dropped.dtype, device=dropped.device)
        mass = mass.scatter_add(-1, index, dropped)                                     # [B, H, Wq, k+1]
        heads = dropped @ v + mass @ rv[None]                                           # [B, H, Wq, e]
        ctx = heads.transpose(1, 2).flatten(2)                                          # [B, Wq, d]
        ctx = ctx[:, 0] if last_only else layout.unpad(ctx)                             # [Tq, d]
        y = self.out(ctx)
        y = F.dropout(y, self.p_hidden, self.training) if last_only else layout.dropout(y, self.p_hidden, self.training)
        y = self.norm(x + y)
        return (y, probs, heads) if return_attention else (y, None, None)


class TimeIntervalEncoder(nn.Module):
    """SASRec's embedding, the interval tables, then ``n_blocks`` blocks of interval attention and SASRec's
    feed-forward: items [B, L], r [B, W, W] → states [T, d] ([B, d] with ``last_only``)."""

    def __init__(self, c: TiSASRecConfig, n_items: int) -> None:
        super().__init__()
        self.embedding = ItemSequenceEmbedding(n_items, c.d, c.max_len, c.hidden_dropout, c.ln_eps, c.positions)
        self.interval_key, self.interval_value = nn.Embedding(c.time_span + 1, c.d), nn.Embedding(c.time_span + 1, c.d)
        self.attention = nn.ModuleList(
            TimeIntervalAttention(c.d, c.n_heads, c.attn_dropout, c.hidden_dropout, c.ln_eps)
            for _ in range(c.n_blocks))
        self.ffn = nn.ModuleList(FeedForward(c.d, c.ffn, c.hidden_dropout, c.ln_eps) for _ in range(c.n_blocks))

    def forward(self, items: Tensor, layout: TokenLayout, intervals: Tensor, return_attention: bool = False,
                last_only: bool = False) -> ModelOutput:
        x = self.embedding(items, layout)                                               # [T, d]
        out = ModelOutput(states=x)
        for i, (attention, ffn) in enumerate(zip(self.attention, self.ffn)):
            last = last_only and i == len(self.attention) - 1
            x, probs, heads = attention(x, layout, intervals, self.interval_key.weight, self.interval_value.weight,
                                        return_attention, last)
            x = ffn(x, None if last else layout)
            if return_attention:
                out.attention.append(probs)
                out.head_outputs.append(heads)
        out.states = x
        return out


class TiSASRec(SASRec):
    """SASRec with time-interval-aware attention; forward, score and the CE/BCE losses are SASRec's."""

    def __init__(self, config: TiSASRecConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        self.encoder = TimeIntervalEncoder(config, n_items)   # replaces SASRec's encoder
        init_normal(self, config.init_std)

    @classmethod
    def from_split(cls, config: TiSASRecConfig, split: SplitData) -> "TiSASRec":
        if split.train.timestamps is None:
            raise ValueError(f"TiSASRec needs timestamps and dataset {split.name!r} has none "
                             "(docs/baselines.md §3)")
        return cls(config, split.n_items)

    def encode(self, batch: Batch, return_attention: bool = False, last_only: bool = False
               ) -> tuple[ModelOutput, TokenLayout]:
        if batch.timestamps is None:
            raise ValueError("TiSASRec needs batch.timestamps [B, L] (the split of a dataset with timestamps)")
        layout = TokenLayout.from_items(batch.items, self.packed and not return_attention)
        window = slice(layout.length - layout.width, None)
        intervals = time_intervals(batch.timestamps[:, window], batch.items[:, window] > 0, self.config.time_span)
        return self.encoder(batch.items, layout, intervals, return_attention, last_only), layout
