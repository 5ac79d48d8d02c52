"""MOJITO (Tran et al., SIGIR 2023): time-aware attention mixtures plus a long-term attentive FISM.

Follows docs/mojito.md (the official TF1 code, deezer/sigir23-mojito) with the *intended per-user* attention
mixture of docs/mojito.md §5.1, generalised to H local heads (M9). Its pieces: the temporal context in
``time_context.py``, the mixture block in ``attention_mixture.py``, the attentive FISM in ``fism.py``.
Shapes: B sequences, L = max_len positions, d item width, 2d the joint item⊕context width, H local heads of width
d_v = 2d/H, F time features, N FISM items, V = n_items + 1 catalogue rows (row 0 = padding).

    X0 = Dropout([√d·E[v] + P ; √d·c + P]) ⊙ m,  C0 = c = ctx(φ(t))                    (§4)
    block: G_it = Q_it K_itᵀ, G_c = Q_c K_cᵀ (+ σ²·ε) → MLP 2→H→H → H local attentions   (§5.1)
    score(j) = <h_L, [E_j ; ctx(τ)]> + λ·r_long^test(j)                                   (§6-8)
    loss = BCE_short + λ·BCE_long, one negative per position                               (§8)

Randomness: the attention noise is drawn from torch's global RNG (the CPU or device default generator),
so a caller that seeds it (``torch.manual_seed``, or ``torch.random.fork_rng`` + seed as the evaluator
does) gets reproducible noisy scores; the FISM items are drawn from a NumPy generator seeded by the
pair (FISM seed, epoch), independent of the global RNG. The FISM seed is ``fism_seed``, or (None, the
default) a number drawn from the global RNG when the model is built, which the trainer has seeded with the
run's seed: each training seed gets its own FISM draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import History, SplitData
from .attention_mixture import MixtureBlock
from .base import ModelOutput, SequentialModel
from .fism import distinct_pairs, draw_items, history_pairs, self_score, sequence_term, window_items
from .layers import Int16Dropout
from .losses import bce_with_negatives
from .time_context import ContextEmbedding


@dataclass(frozen=True)
class MojitoConfig:
    """Hyperparameters; the defaults are the official ML-1M config (docs/mojito.md §2; Amazon: dropout 0.5).

    - ``n_heads``: local heads H; the value projection 2d→2d is split into H heads of width 2d/H (M9).
    - ``n_time_features``: MOJITO reads the *last* n of the 7 calendar features (year, month, day,
      dayofweek, dayofyear, week, hour); 6 drops the year (LFM-1b's ``use_year=false``).
    - ``fism_pool``: "windows" (faithful, docs/mojito.md §7): the distinct items of the user's training windows,
      inputs and targets; "history": the distinct items of the whole training sequence.
    - ``fism_mask_padding``: exclude the zero padding rows of the FISM memory from its softmax (M5;
      the official code includes them with logit 0).
    - ``attn_noise_at_eval``: keep the σ²·ε attention noise at evaluation (faithful, M3).
    - ``attn_noise``: False removes the attention noise everywhere, training and evaluation (an ablation;
      σ then gets no gradient).
    - ``time_context``: False zeroes the context embedding c of every input and target (an ablation: the
      context half of X0 holds the positions only, C0 = 0, the target-context term of the score is 0).
    - ``fism_seed``: the seed of the FISM draws (with the epoch); None (default): drawn from the global RNG
      when the model is built, i.e. from the run's seed (``train_and_evaluate`` seeds it first).
    - ``adam_beta1`` / ``adam_beta2``: Adam's β's (``optimizer_settings``): the official (0.9, 0.98).
    - ``faithful_batch_pairing``: reproduce the official code's cross-user pairing of docs/mojito.md §5.2 (H = 2,
      even batch size; the outputs then depend on the batch composition and order).
    """

    d: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    d_t: int = 16
    n_harmonics: int = 3
    tempo_linspace: float = 8.0
    n_time_features: int = 7
    fism_items: int = 20
    fism_pool: Literal["windows", "history"] = "windows"
    fism_seed: int | None = None
    fism_mask_padding: bool = False
    lambda_long: float = 0.1
    lambda_trans_seq: float = 0.5
    dropout: float = 0.3
    attn_noise_at_eval: bool = True
    sigma_init: float = 0.1
    input_scale: bool = True
    ln_eps: float = 1e-6
    max_len: int = 50
    faithful_batch_pairing: bool = False
    attn_noise: bool = True
    time_context: bool = True
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98

    def __post_init__(self) -> None:
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be at least 1, got {self.n_heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if (2 * self.d) % self.n_heads:
            raise ValueError(f"2d={2 * self.d} must be divisible by n_heads={self.n_heads}")
        if self.n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {self.n_blocks}")
        if not 1 <= self.n_time_features <= 7:
            raise ValueError(f"n_time_features must lie in 1..7, got {self.n_time_features}")
        if self.fism_items < 1:
            raise ValueError(f"fism_items must be at least 1, got {self.fism_items}")
        if self.fism_pool not in ("windows", "history"):
            raise ValueError(f"fism_pool must be 'windows' or 'history', got {self.fism_pool!r}")
        if self.faithful_batch_pairing and self.n_heads != 2:
            raise ValueError(f"faithful_batch_pairing reproduces the official code only with n_heads=2, "
                             f"got {self.n_heads}")


class Mojito(SequentialModel):
    """MOJITO over items 1..n_items and users 1..n_users.

    ``history`` holds the items each user's FISM items are sampled from (its distinct items form the
    pool); ``from_split`` passes the training windows' items or the whole training sequences.
    """

    n_negatives = 1

    def __init__(self, config: MojitoConfig, n_items: int, n_users: int, history: History) -> None:
        super().__init__()
        c = self.config = config
        self.n_items, self.n_users = n_items, n_users
        self.item = nn.Embedding(n_items + 1, c.d, padding_idx=0)                     # E, row 0 = 0
        self.user = nn.Embedding(n_users + 1, c.d, padding_idx=0)                     # U, row 0 = 0
        self.position = nn.Embedding(c.max_len, c.d)                                  # P, shared by both halves
        for table in (self.item.weight[1:], self.user.weight[1:], self.position.weight):
            nn.init.xavier_uniform_(table)
        self.context = ContextEmbedding(c.n_time_features, c.d_t, c.n_harmonics, c.tempo_linspace, c.d, c.dropout,
                                        enabled=c.time_context)
        self.input_dropout = Int16Dropout(c.dropout)
        self.sigma = nn.Parameter(torch.full((2,), c.sigma_init))                     # (σ_it, σ_c), all blocks
        self.blocks = nn.ModuleList(MixtureBlock(c.d, c.n_heads, c.dropout, c.ln_eps, c.faithful_batch_pairing)
                                    for _ in range(c.n_blocks))
        self.final_norm = nn.LayerNorm(2 * c.d, eps=c.ln_eps)
        # FISM seed: the config's, else drawn from the (run-seeded) global RNG, after the initialisation
        self.fism_seed = (int(torch.randint(0, 2**31 - 1, ())) if c.fism_seed is None else c.fism_seed)
        # FISM pool (distinct (user, item) pairs, sorted by user) and this epoch's N items per user
        pool_users, pool_items = distinct_pairs(*history_pairs(history), n_items)
        self.register_buffer("pool_users", pool_users, persistent=False)              # [Q]
        self.register_buffer("pool_items", pool_items, persistent=False)              # [Q]
        self.register_buffer("fism", torch.zeros(n_users + 1, c.fism_items, dtype=torch.long))  # [U+1, N]
        self.start_epoch(0)

    @classmethod
    def from_split(cls, config: MojitoConfig, split: SplitData) -> "Mojito":
        """Build for ``split``; the FISM pool is the training windows or ``split.valid_history``."""
        if split.max_len != config.max_len:
            raise ValueError(f"split max_len {split.max_len} != MojitoConfig.max_len {config.max_len}")
        pool = (split.valid_history if config.fism_pool == "history"
                else window_items(split.train, split.n_users, split.n_items))
        return cls(config, split.n_items, split.n_users, pool)

    def start_epoch(self, epoch: int, split: SplitData | None = None) -> None:
        """Draw this epoch's N FISM items per user (``fism.draw_items``, seeded by the FISM seed and ``epoch``).

        ``fism`` is a persistent buffer, so a checkpoint carries the items of its epoch.
        """
        self.fism.copy_(draw_items(self.pool_users, self.pool_items, self.fism, self.fism_seed, epoch))

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        c = self.config
        items = batch.items                                                           # [B, L]
        if items.shape[1] != c.max_len:
            raise ValueError(f"MOJITO expects sequences of max_len={c.max_len}, got {items.shape[1]}")
        if batch.time_feats is None:
            raise ValueError("MOJITO needs batch.time_feats (calendar features of the inputs)")
        if c.faithful_batch_pairing and len(items) % 2:
            # the official code only ever sees full, even batches (M11); an odd batch pairs its last user
            # with a copy of itself
            rows = torch.arange(len(items) + 1, device=items.device).clamp(max=len(items) - 1)
            out = self.forward(batch.select(rows), return_attention, last_only)
            return ModelOutput(out.states[:-1], [a[:-1] for a in out.attention], [h[:-1] for h in out.head_outputs])
        m = items > 0                                                                 # [B, L]
        scale = math.sqrt(c.d) if c.input_scale else 1.0
        P = self.position.weight                                                      # [L, d]
        ctx = self.context(batch.time_feats)                                          # [B, L, d] C0
        x = torch.cat([scale * self.item(items) + P, scale * ctx + P], dim=-1)        # [B, L, 2d]
        x = self.input_dropout(x) * m[..., None]                                      # X0
        sigma = self.sigma if c.attn_noise and (self.training or c.attn_noise_at_eval) else None
        out = ModelOutput(states=x)
        for block in self.blocks:
            x, attn, heads = block(x, ctx, m, sigma)
            ctx = x[..., c.d:]                                                        # last d dims of X'
            if return_attention:
                out.attention.append(attn)
                out.head_outputs.append(heads)
        out.states = self.final_norm(x)                                               # [B, L, 2d]
        return out

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        """r_short(L-1, j) + λ·r_long^test(j) (docs/mojito.md §6-8), for every item ([B, V]) or ``candidates`` ([B, C]).

        The target context is that of ``batch.target_time_feats[:, -1]``; it adds the same constant to
        every candidate (M8).
        """
        d = self.config.d
        if batch.target_time_feats is None:
            raise ValueError("MOJITO needs batch.target_time_feats (the held-out item's calendar features)")
        h = out.states[:, -1]                                                         # [B, 2d]
        tau = self.context(batch.target_time_feats[:, -1])                            # [B, d]
        E = self.item.weight                                                          # [V, d]
        cand = E[None] if candidates is None else E[candidates]                      # [1, V, d] or [B, C, d]
        short = (cand @ h[:, :d, None]).squeeze(-1) + (h[:, d:] * tau).sum(-1, keepdim=True)   # [B, C]
        return short + self.config.lambda_long * self.long_term_test(batch, cand)

    def loss(self, batch: Batch) -> Tensor:
        """L_short + λ·L_long, BCE with ``batch.negatives`` [B, L, K] at the non-pad targets (docs/mojito.md §8)."""
        d = self.config.d
        if batch.negatives is None:
            raise ValueError("MOJITO needs batch.negatives [B, L, 1] (the trainer samples them)")
        if batch.target_time_feats is None:
            raise ValueError("MOJITO needs batch.target_time_feats (the targets' calendar features)")
        where = batch.targets > 0                                                     # [B, L]
        h = self.forward(batch).states                                                # [B, L, 2d]
        tau = self.context(batch.target_time_feats)                                   # [B, L, d]
        e_pos, e_neg = self.item(batch.targets), self.item(batch.negatives)           # [B, L, d], [B, L, K, d]
        ctx_term = (h[..., d:] * tau).sum(-1)                                         # [B, L] same for pos/neg
        pos = (h[..., :d] * e_pos).sum(-1) + ctx_term                                 # [B, L]
        neg = torch.einsum("bld,blkd->blk", h[..., :d], e_neg) + ctx_term[..., None]  # [B, L, K]
        short = bce_with_negatives(pos[where], neg[where])
        B, L, K, _ = e_neg.shape
        memory, valid = self.fism_memory(batch.users)
        long_pos = self.fism_self_score(e_pos, memory, valid)                         # [B, L]
        long_neg = self.fism_self_score(e_neg.reshape(B, L * K, d), memory, valid).view(B, L, K)
        return short + self.config.lambda_long * bce_with_negatives(long_pos[where], long_neg[where])

    # ----- long-term attentive FISM (docs/mojito.md §7) --------------------------------------------------------------

    def fism_memory(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """M_u = [U[u]; E[f_1..f_N]] [B, N+1, d] and its non-padding rows [B, N+1] (the user row always)."""
        f = self.fism[users]                                                          # [B, N]
        memory = torch.cat([self.user(users)[:, None], self.item(f)], dim=1)
        valid = torch.cat([torch.ones_like(f[:, :1], dtype=torch.bool), f > 0], dim=1)
        return memory, valid

    def fism_self_score(self, x: Tensor, memory: Tensor, valid: Tensor) -> Tensor:
        """<g(x), x> (``fism.self_score``): x [B or 1, J, d] → [B, J], r_long^train for x = E_j."""
        return self_score(x, memory, valid, self.config.lambda_trans_seq, self.config.fism_mask_padding)

    def long_term_test(self, batch: Batch, cand: Tensor) -> Tensor:
        """r_long^test(j) = (1/L)·<g(E_j) + Σ_{l=1..L-1} g(E[s_l]), E_j>: cand E_j [B or 1, C, d] → [B, C].

        Slot 0 (the oldest) is left out of the sum and the divisor is L, not the sequence length (M5).
        """
        c, L = self.config, batch.items.shape[1]
        memory, valid = self.fism_memory(batch.users)
        seq = self.item(batch.items[:, 1:])                                           # [B, L-1, d] (0 at pads)
        g_seq = sequence_term(seq, memory, valid, c.lambda_trans_seq, c.fism_mask_padding)    # [B, d]
        return (self.fism_self_score(cand, memory, valid) + (cand @ g_seq[..., None]).squeeze(-1)) / L
