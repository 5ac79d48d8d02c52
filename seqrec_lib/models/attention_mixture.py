"""MOJITO's attention-mixture block (docs/mojito.md §5): item and temporal-context attention logits mixed into H
local heads by a small MLP, then a feed-forward layer.

Shapes: B sequences, L positions, d the item (and context) width, 2d the joint item⊕context width, H local heads
of width d_v = 2d/H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import UniformDropout


def dense(n_in: int, n_out: int) -> nn.Linear:
    """A TF ``dense`` layer: Glorot-uniform weight, zero bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def channel_mix(x: Tensor, layer: nn.Linear) -> Tensor:
    """``layer`` applied over dim 1 of x [B, C, L, L] → [B, C', L, L], as C'·C scalar multiply-adds: with C, C' ≤ a
    few heads this is ~3x faster on a CPU than a [B·L·L, C] matmul and needs no permuted copies."""
    W, b = layer.weight, layer.bias                                                   # [C', C], [C']
    return torch.stack([sum(W[k, c] * x[:, c] for c in range(x.shape[1])) + b[k] for k in range(W.shape[0])], 1)


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
        self.attn_dropout = UniformDropout(dropout)
        self.norm_ffn = nn.LayerNorm(2 * d, eps=ln_eps)
        self.ffn1, self.ffn2 = dense(2 * d, 2 * d), dense(2 * d, 2 * d)
        self.dropout = UniformDropout(dropout)

    def forward(self, x: Tensor, ctx: Tensor, m: Tensor, sigma: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        B, L, D = x.shape
        H = self.n_heads
        xn = self.norm_x(x)                                                           # [B, L, 2d] LN(X)
        g_it = self.q_it(xn) @ self.k_it(x).transpose(1, 2)                           # [B, L, L]
        g_c = self.q_c(self.norm_c(ctx)) @ self.k_c(ctx).transpose(1, 2)              # [B, L, L]
        if self.pairing:
            if B % 2:
                raise ValueError(f"faithful_batch_pairing needs an even batch size, got {B}")
            # fish.py concatenates [G_it; G_c] head-major ([2B]) and reads it back batch-major ([B, 2]):
            # row b holds rows 2b, 2b+1 of the concatenation, i.e. the item logits of a pair of users
            # for b < B/2 and the context logits of a pair after (docs/mojito.md §5.2)
            g = torch.cat([g_it, g_c]).view(B, 2, L, L)                               # [B, 2, L, L]
        else:
            g = torch.stack([g_it, g_c], dim=1)                                       # [B, 2, L, L]
        if sigma is not None:                                                         # noise std is σ², not σ
            g = g + sigma[:, None, None] ** 2 * torch.randn(g.shape, device=g.device, dtype=g.dtype)
        s = channel_mix(F.relu(channel_mix(g, self.mix1)), self.mix2)                # [B, H, L, L]
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
