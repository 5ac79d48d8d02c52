"""Transformer pieces shared by SASRec and FAME (ICLRec/S3-Rec style, docs/sasrec.md §1): item+position
embedding, a causal multi-head self-attention that can return its per-head maps and outputs, the
point-wise feed-forward, and the post-LN block."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tokens import TokenLayout

FFNKind = Literal["gelu_4d", "relu_dd"]
PositionKind = Literal["slot", "from_start"]


class Int16Dropout(nn.Module):
    """Inverted dropout from one random 16-bit integer per element: keep where it is ≥ a threshold, so the drop
    probability is p rounded to a multiple of 2⁻¹⁶ (0.3 → 0.300003), and scale the kept ones by 1/(1 − that p).

    The integers are four to a 64-bit draw of torch's default generator (seeded and checkpointed as any draw):
    ~0.8 ns an element on the 2-core AMD EPYC, against ~2 ns for ``rand_like``'s floats and 7-22 ns for the serial
    ``bernoulli_`` there. For models on padded [B, L, ...] tensors (MOJITO); the token-layout models use
    ``TokenLayout.dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {p}")
        self.p = p
        dropped = round(p * 2**16)                           # of the 2¹⁶ values of an int16
        self.threshold = dropped - 2**15                     # keep int16 ≥ threshold: 2¹⁶ − dropped values
        self.scale = 2**16 / (2**16 - dropped)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, None)  # full range
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_mask(items: Tensor, causal: bool = True) -> Tensor:
    """[B, L] item ids (0 = padding) → [B, 1, L, L] bool, True where query i may attend to key j.

    Causal (j <= i) and key-padding masked, as ICLRec's mask. A padded query row attends only to itself,
    so no position ever sees the future (padded rows are never scored). ``causal=False``: every real key
    (bidirectional, BERT4Rec), padding still masked the same way.
    """
    L = items.shape[1]
    order = torch.ones(L, L, dtype=torch.bool, device=items.device)
    order = order.tril() if causal else order
    keys = (items > 0)[:, None, None, :]                                   # [B, 1, 1, L]
    eye = torch.eye(L, dtype=torch.bool, device=items.device)
    return order & (keys | eye)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dim with masked entries at exactly 0 probability. ``mask`` broadcasts."""
    return torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)


def position_ids(items: Tensor, kind: PositionKind, max_len: int) -> Tensor:
    """[B, L] ids → [B, L] position indices into a table of ``max_len`` rows.

    ``slot`` (ICLRec / Kang): the slot of the left-padded window, right-aligned, so the most recent item
    is always at max_len-1. ``from_start`` (RecBole): the index within the sequence, 0 at its first
    item (padding gets 0); with it, every position's state equals the state of that prefix alone.
    """
    L = items.shape[1]
    if L > max_len:
        raise ValueError(f"sequence length {L} exceeds max_len {max_len}")
    if kind == "slot":
        return torch.arange(max_len - L, max_len, device=items.device).expand_as(items)
    if kind == "from_start":
        return ((items > 0).long().cumsum(1) - 1).clamp(min=0)
    raise ValueError(f"positions must be 'slot' or 'from_start', got {kind!r}")


class ItemSequenceEmbedding(nn.Module):
    """X0 = Dropout(LN(E[items] + P[positions])) at the tokens: items [B, L] → [T, d] (``layout``'s tokens).
    ``E`` is shared with the output. ``vectors`` [T, d], when given, replace E[items] (CORE embeds its
    session-dropped item vectors, the ones it also sums)."""

    def __init__(self, n_items: int, d: int, max_len: int, dropout: float, ln_eps: float,
                 positions: PositionKind = "slot") -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position = nn.Embedding(max_len, d)
        self.positions = positions
        self.norm = nn.LayerNorm(d, eps=ln_eps)
        self.p = dropout

    def forward(self, items: Tensor, layout: TokenLayout, vectors: Tensor | None = None) -> Tensor:
        pos = layout.from_full(position_ids(items, self.positions, self.position.num_embeddings))   # [T]
        vectors = self.item(layout.from_full(items)) if vectors is None else vectors               # [T, d]
        x = self.norm(vectors + self.position(pos))                                                # [T, d]
        return layout.dropout(x, self.p, self.training)


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention with output projection, residual and LayerNorm (post-LN).

    forward: X [T, d] at the tokens of ``layout`` → (Y [Tq, d], A [B, H, Wq, W] or None, O [B, H, Wq, d'] or
    None), where A are the post-softmax maps and O = A V the per-head outputs before W_O (docs/analysis.md §1).
    Q, K, V (one product), W_O, the hidden dropout and the LayerNorm run once on all tokens; only ``attend`` runs
    per length bucket (``TokenLayout.per_bucket``) in the [B, H, W, W] layout. With ``last_only`` the queries are
    each sequence's last token (Tq = B, Wq = 1), which is all evaluation needs of the last block.
    """

    def __init__(self, d: int, n_heads: int, attn_dropout: float, hidden_dropout: float, ln_eps: float) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"hidden size d={d} must be divisible by n_heads={n_heads}")
        self.n_heads, self.d_head = n_heads, d // n_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.p_attn, self.p_hidden = attn_dropout, hidden_dropout
        self.norm = nn.LayerNorm(d, eps=ln_eps)

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, W, d] → [B, H, W, d']."""
        B, W, _ = x.shape
        return x.view(B, W, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: Tensor, layout: TokenLayout, return_attention: bool = False, last_only: bool = False
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        layers = (self.query, self.key, self.value)
        qkv = F.linear(x, torch.cat([m.weight for m in layers]), torch.cat([m.bias for m in layers]))   # [T, 3d]
        ctx, probs, heads = layout.per_bucket(lambda bucket, rows: self.attend(rows, bucket, return_attention,
                                                                               last_only), qkv, last_only)   # [Tq, d]
        if last_only:
            x = layout.last_tokens(x)                                                       # [B, d]
        y = self.out(ctx)
        y = F.dropout(y, self.p_hidden, self.training) if last_only else layout.dropout(y, self.p_hidden, self.training)
        return self.norm(x + y), probs, heads

    def attend(self, qkv: Tensor, layout: TokenLayout, return_attention: bool, last_only: bool
               ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """softmax(Q Kᵀ/√d') V per head: qkv [T, 3d] at ``layout``'s tokens → (context [Tq, d], A and O with
        ``return_attention``, else None)."""
        q, k, v = qkv.chunk(3, dim=1)                                                       # [T, d] each
        k, v = self.split_heads(layout.pad(k)), self.split_heads(layout.pad(v))             # [B, H, W, d']
        if last_only:
            q, mask = self.split_heads(layout.last_tokens(q)[:, None]), layout.attention[:, :, -1:]   # [B, H, 1, d']
        else:
            q, mask = self.split_heads(layout.pad(q)), layout.attention                      # [B, H, W, d']
        probs = masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), mask)     # [B, H, Wq, W]
        dropped = (F.dropout(probs, self.p_attn, self.training) if last_only
                   else layout.attention_dropout(probs, self.p_attn, self.training))
        heads = dropped @ v                                                                 # [B, H, Wq, d']
        ctx = heads.transpose(1, 2).flatten(2)                                              # [B, Wq, d]
        ctx = ctx[:, 0] if last_only else layout.unpad(ctx)                                 # [Tq, d]
        return (ctx, probs, heads) if return_attention else (ctx, None, None)


class FeedForward(nn.Module):
    """Point-wise FFN with residual and LayerNorm: GELU with a 4d inner size (ICLRec, default) or ReLU
    with d×d (Kang / FAME Eq. 5). [..., d] → [..., d]; its dropout draws as on ``layout``'s padded batch
    (without a layout: plain ``F.dropout``)."""

    def __init__(self, d: int, kind: FFNKind, dropout: float, ln_eps: float) -> None:
        super().__init__()
        if kind not in ("gelu_4d", "relu_dd"):
            raise ValueError(f"ffn must be 'gelu_4d' or 'relu_dd', got {kind!r}")
        inner = 4 * d if kind == "gelu_4d" else d
        self.fc1, self.fc2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.act = F.gelu if kind == "gelu_4d" else F.relu
        self.p = dropout
        self.norm = nn.LayerNorm(d, eps=ln_eps)

    def forward(self, x: Tensor, layout: TokenLayout | None = None, heads_first: bool = False) -> Tensor:
        y = self.fc2(self.act(self.fc1(x)))
        y = (F.dropout(y, self.p, self.training) if layout is None
             else layout.dropout(y, self.p, self.training, heads_first))
        return self.norm(x + y)


class TransformerBlock(nn.Module):
    """Self-attention then FFN, both post-LN. [T, d] → [T, d] (or [B, d] with ``last_only``) + maps/heads."""

    def __init__(self, d: int, n_heads: int, attn_dropout: float, hidden_dropout: float, ffn: FFNKind,
                 ln_eps: float) -> None:
        super().__init__()
        self.attention = MultiHeadSelfAttention(d, n_heads, attn_dropout, hidden_dropout, ln_eps)
        self.ffn = FeedForward(d, ffn, hidden_dropout, ln_eps)

    def forward(self, x: Tensor, layout: TokenLayout, return_attention: bool = False, last_only: bool = False
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        y, probs, heads = self.attention(x, layout, return_attention, last_only)
        return self.ffn(y, None if last_only else layout), probs, heads


def init_normal(module: nn.Module, std: float) -> None:
    """ICLRec initialisation: Linear/Embedding weights ~ N(0, std), biases 0, LayerNorm γ=1, β=0;
    the padding row of an embedding is zeroed."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
