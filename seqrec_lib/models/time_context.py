"""MOJITO's temporal context (docs/mojito.md §3): Mercer encoders of calendar features and their projection.

Shapes: F calendar features, d_t width of each Mercer encoding, K harmonics, d the context width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Int16Dropout


class MercerTimeEncoder(nn.Module):
    """F independent Mercer encoders (one per feature, docs/mojito.md §3): [u] raw values → [u, F, d_t].

    Mercer_f(t)_i = Σ_k W_f[i,k]·sin(k·t·10^-p_f[i]) + W_f[i,K+k]·cos(k·t·10^-p_f[i]) + b_f[i], k = 1..K,
    with p_f = linspace(0, tempo_linspace, d_t) (trainable), W_f Glorot-uniform [d_t, 2K], b_f = 0.
    """

    def __init__(self, n_features: int, d_t: int, n_harmonics: int, tempo_linspace: float) -> None:
        super().__init__()
        self.register_buffer("harmonics", torch.arange(1, n_harmonics + 1.0), persistent=False)    # [K]
        self.log_period = nn.Parameter(torch.linspace(0, tempo_linspace, d_t).repeat(n_features, 1))  # [F, d_t]
        bound = math.sqrt(6.0 / (d_t + 2 * n_harmonics))                                            # Glorot
        self.basis = nn.Parameter(torch.empty(n_features, d_t, 2 * n_harmonics).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_features, d_t))                                      # [F, d_t]

    def forward(self, values: Tensor) -> Tensor:
        """Every feature's encoding of each of ``values``: [u] raw values → [u, F, d_t]. Callers pass the distinct
        values of their features (calendar features take few: hours, days, ...) and gather, ~1000x less work than
        encoding every entry."""
        K = len(self.harmonics)
        freq = self.harmonics / 10.0 ** self.log_period[..., None]                   # [F, d_t, K]
        angle = values[:, None, None, None] * freq                                   # [u, F, d_t, K]
        return ((torch.sin(angle) * self.basis[..., :K]).sum(-1)
                + (torch.cos(angle) * self.basis[..., K:]).sum(-1) + self.bias)      # [u, F, d_t]


class ContextEmbedding(nn.Module):
    """c = Dropout(W_c · concat_f Mercer_f(φ_f) + b_c): [..., ≥F] calendar features → [..., d] (docs/mojito.md §3).

    Reads the *last* F features. W_c ~ N(0, 0.01²), b_c = 0, no activation. ``enabled=False`` (the time-context
    ablation) returns zeros. One instance serves the inputs and the targets.
    """

    def __init__(self, n_features: int, d_t: int, n_harmonics: int, tempo_linspace: float, d: int, dropout: float,
                 enabled: bool = True) -> None:
        super().__init__()
        self.n_features, self.enabled = n_features, enabled
        self.mercer = MercerTimeEncoder(n_features, d_t, n_harmonics, tempo_linspace)
        self.out = nn.Linear(n_features * d_t, d)
        nn.init.normal_(self.out.weight, 0.0, 0.01)
        nn.init.zeros_(self.out.bias)
        self.dropout = Int16Dropout(dropout)

    def forward(self, feats: Tensor) -> Tensor:
        if feats.shape[-1] < self.n_features:
            raise ValueError(f"MOJITO needs {self.n_features} calendar features, the batch has {feats.shape[-1]}")
        if not self.enabled:
            return feats.new_zeros(*feats.shape[:-1], self.out.out_features)
        t = feats[..., -self.n_features:].float()                                     # [..., F]
        F_, d = self.n_features, self.out.out_features
        values, where = torch.unique(t, return_inverse=True)                          # [u], [..., F]
        # W_c·concat_f Mercer_f = Σ_f W_c[:, f]·Mercer_f: project each (distinct value, feature) once, then sum the
        # F projected rows of each entry (an embedding bag); no [..., F·d_t] gather and its scatter-add backward
        proj = torch.einsum("ufk,dfk->ufd", self.mercer(values), self.out.weight.view(d, F_, -1))  # [u, F, d]
        rows = where * F_ + torch.arange(F_, device=t.device)                         # [..., F] rows of [u·F, d]
        c = F.embedding_bag(rows.reshape(-1, F_), proj.reshape(-1, d), mode="sum") + self.out.bias
        return self.dropout(c.view(*t.shape[:-1], d))                                 # [..., d]
