"""MOJITO's attention-mixture block (docs/mojito.md §5): item and temporal-context attention logits mixed into H
local heads by a small MLP, then a feed-forward layer.

Shapes: B sequences, L positions, d the item (and context) width, 2d the joint item⊕context width, H local heads
of width d_v = 2d/H.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Int16Dropout


def dense(n_in: int, n_out: int) -> nn.Linear:
    """A TF ``dense`` layer: Glorot-uniform weight, zero bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def channel_mix(x: Sequence[Tensor], layer: nn.Linear) -> list[Tensor]:
    """``layer`` applied across C channels x = [c_1..c_C], each [B, L, L] → C' channels [B, L, L], as one fused
    multiply-add (addcmul) per weight: with C, C' ≤ a few heads this is ~3x faster on a CPU than a [B·L·L, C] matmul
    and needs no permuted or stacked copies."""
    W, b = layer.weight, layer.bias                                                   # [C', C], [C']
    out = []
    for k in range(W.shape[0]):
        y = torch.addcmul(b[k], W[k, 0], x[0])
        for c in range(1, len(x)):
            y = y.addcmul_(W[k, c], x[c])
        out.append(y)
    return out


class MixtureBlock(nn.Module):
    """One attention-mixture block (docs/mojito.md §5.1) and its FFN.

    G_it = Q_it K_itᵀ, G_c = Q_c K_cᵀ (+ σ²·ε) → MLP 2→H→H → H local attentions over V split into H heads.
    ``pairing``: the official code's cross-user pairing of docs/mojito.md §5.2 (H = 2, even batch).

    forward: X [B, L, 2d], C [B, L, d], m [B, L] bool (non-padding), σ [2] or None (no noise)
    → (X' [B, L, 2d], A [B, H, L, L] post-softmax maps after the query mask, O [B, H, L, d_v] = A_j V_j).
    """

    def __init__(self, d: int, n_heads: int, dropout: float, ln_eps: float, pairing: bool = False) -> None:
        super().__init__()
        H = n_heads
        self.n_heads, self.d_g, self.pairing = H, d, pairing
        self.norm_x, self.norm_c = nn.LayerNorm(2 * d, eps=ln_eps), nn.LayerNorm(d, eps=ln_eps)
        self.q_it, self.k_it = dense(2 * d, d), dense(2 * d, d)                       # item global head
        self.q_c, self.k_c = dense(d, d), dense(d, d)                                 # context global head
        self.value = dense(2 * d, 2 * d)                                              # H heads of 2d/H
        self.mix1, self.mix2 = dense(2, H), dense(H, H)                               # admixture MLP 2→H→H
        self.attn_dropout = Int16Dropout(dropout)
        self.norm_ffn = nn.LayerNorm(2 * d, eps=ln_eps)
        self.ffn1, self.ffn2 = dense(2 * d, 2 * d), dense(2 * d, 2 * d)
        self.dropout = Int16Dropout(dropout)

    def forward(self, x: Tensor, ctx: Tensor, m: Tensor, sigma: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        B, L, D = x.shape
        H = self.n_heads
        xn = self.norm_x(x)                                                           # [B, L, 2d] LN(X)
        g_it = self.q_it(xn) @ self.k_it(x).transpose(1, 2)                           # [B, L, L]
        g_c = self.q_c(self.norm_c(ctx)) @ self.k_c(ctx).transpose(1, 2)              # [B, L, L]
        g = [g_it, g_c]                                                               # 2 channels [B, L, L]
        if self.pairing:
            if B % 2:
                raise ValueError(f"faithful_batch_pairing needs an even batch size, got {B}")
            # fish.py concatenates [G_it; G_c] head-major ([2B]) and reads it back batch-major ([B, 2]):
            # row b holds rows 2b, 2b+1 of the concatenation, i.e. the item logits of a pair of users
            # for b < B/2 and the context logits of a pair after (docs/mojito.md §5.2)
            g = torch.cat(g).view(B, 2, L, L).unbind(1)
        if sigma is not None:                                                         # noise std is σ², not σ
            eps = torch.randn(B, 2, L, L, device=x.device, dtype=x.dtype)           # one draw, [B, 2, L, L]
            g = [torch.addcmul(c, s ** 2, e) for c, s, e in zip(g, sigma, eps.unbind(1))]
        s = torch.stack(channel_mix([F.relu(c) for c in channel_mix(g, self.mix1)], self.mix2), 1)   # [B, H, L, L]
        if self.pairing:                                                              # batch-major rows b·H+j
            s = s.reshape(H, B, L, L).transpose(0, 1)                                 # read head-major h·B+u
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        allowed = causal & m[:, None, None, :]                                        # [B, 1, L, L] keys ≤ q
        s = (s / math.sqrt(self.d_g)).masked_fill(~allowed, torch.finfo(s.dtype).min)
        # query mask = m: the code zeroes rows where LN(X) is all zero, which stops acting once LN's β moves;
        # either way padded rows are zeroed by the final ⊙ m, so no non-padded output changes
        attn = torch.softmax(s, dim=-1) * m[:, None, :, None]                         # [B, H, L, L]
        v = self.value(x).view(B, L, H, D // H).transpose(1, 2)                       # [B, H, L, d_v]
        heads = self.attn_dropout(attn) @ v                                           # [B, H, L, d_v]
        o = heads.transpose(1, 2).reshape(B, L, D) + xn                               # residual on LN(X)
        on = self.norm_ffn(o)
        y = self.dropout(self.ffn2(self.dropout(F.relu(self.ffn1(on))))) + on         # [B, L, 2d]
        return y * m[..., None], attn, heads
