"""FAME (Liu, Zhang & Long, WSDM 2025): facet-aware multi-head prediction with a Mixture-of-Experts query
in the last attention layer, built on a pretrained SASRec (docs/fame.md).

Shapes: B sequences, L positions, d model width, H heads of width d' = d/H, N experts per head,
V = n_items + 1 catalogue rows (row 0 = padding).

    X = SASRec embedding + blocks 1..n_blocks-1                                    [B, L, d]
    q_n^(h) = X W_Q(n)^(h);  k^(h), v^(h) = the pretrained last block's K/V slices     (Eqs. 12-13)
    f_n^(h) = softmax(q_n^(h) k^(h)ᵀ/√d' + mask) v^(h)                                  (Eqs. 14-15)
    β^(h) = softmax([f_1^(h) | … | f_N^(h)] W_exp^(h));  f^(h) = Σ_n β_n^(h) f_n^(h)       (Eqs. 16-17)
    f̃^(h) = LN_d'(x^(h) + Dropout(f^(h)))  ('slice' residual, A5)  or  f^(h)  ('none')
    F^(h) = LN_d'(f̃^(h) + Dropout(FFN'(f̃^(h))))      one FFN' and LayerNorm for all heads (Eq. 7)
    g̃ = softmax([F^(1) | … | F^(H)] W_g + b_g)                                           (Eq. 10)
    s_v = Σ_h g̃_h (E_v W_f^(h))ᵀ F^(h) = <concat_h(g̃_h F^(h)), (E W_f)_v>             (Eqs. 9, 11)

The last identity makes full ranking one [B, d] × [d, V] matmul: ``states`` are concat_h(g̃_h F^(h)).
``mixture='probability'`` (A3 alternative) mixes per-head softmaxes instead: p_v = Σ_h g̃_h softmax(s^(h))_v.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import Batch
from ..data.sequences import SplitData
from .base import ModelOutput, SequentialModel
from .layers import FeedForward, init_normal, masked_softmax
from .losses import candidate_scores, item_cross_entropy, target_positions
from .sasrec import BackboneConfig, SASRec, SASRecConfig, SequenceEncoder
from .tokens import TokenLayout

AttnResidual = Literal["slice", "none"]
Mixture = Literal["logit", "probability"]
ExpertInit = Literal["random", "pretrained_noise"]
FacetInit = Literal["random", "block_selector"]

EXPERT_NOISE_STD = 0.01  # A6 'pretrained_noise': experts = pretrained W_Q^(h) + N(0, 0.01²)


@dataclass(frozen=True)
class FameConfig(BackboneConfig):
    """Hyperparameters (docs/fame.md; decisions A1-A20 in its §10): SASRec's backbone (``sasrec_config()``) plus FAME's own.

    - ``n_experts``: N expert queries per head; 1 is FAME w/o MoE (docs/fame.md §7), which always keeps the
      pretrained single query W_Q (``expert_init`` applies to N > 1 only).
    - ``attn_residual``: 'slice' (A5 default) LN_d'(x^(h) + Dropout(f^(h))); 'none' paper-literal.
    - ``mixture``: 'logit' (A3 default, Eq. 11) or 'probability' (mixture of per-head softmaxes).
    - ``expert_init``: 'random' N(0, init_std) (A6 default) or 'pretrained_noise' W_Q^(h) + N(0, 0.01²).
    - ``wf_init``: W_f 'random' N(0, init_std) or 'block_selector' (W_f^(h) selects E's h-th slice).
    - ``expert_bias``: give the expert queries a bias (A7; copied from b_Q whenever W_Q is copied).
    - ``ffn``: the feed-forward of the SASRec blocks (FAME's own FFN' is always ReLU d'×d').
    """

    n_experts: int = 4
    attn_residual: AttnResidual = "slice"
    mixture: Mixture = "logit"
    expert_init: ExpertInit = "random"
    wf_init: FacetInit = "random"
    expert_bias: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, kind in (("attn_residual", AttnResidual), ("mixture", Mixture), ("expert_init", ExpertInit),
                           ("wf_init", FacetInit)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"{name} must be one of {get_args(kind)}, got {getattr(self, name)!r}")
        if self.n_experts < 1:
            raise ValueError(f"n_experts must be at least 1, got {self.n_experts}")

    def sasrec_config(self) -> SASRecConfig:
        """The SASRec-CE whose checkpoint this FAME is built from (same backbone, same H)."""
        return SASRecConfig(**self.backbone(), loss="ce")


class MoEAttention(nn.Module):
    """Self-attention with N expert queries per head over shared K/V, mixed by a per-head router.

    forward: X [T, d] at ``layout``'s tokens → f [Tq, H, d'] (Eq. 17), β [Tq, H, N] (Eq. 16), and with
    ``return_attention`` the effective head attention Ā_h = Σ_n β_n α̃_n [B, H, W, W] (else None). Queries are
    every token, or each sequence's last one with ``last_only`` (Tq = B).
    """

    def __init__(self, d: int, n_heads: int, n_experts: int, attn_dropout: float, expert_bias: bool) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d // n_heads
        H, N, e = n_heads, n_experts, self.d_head
        self.key, self.value = nn.Linear(d, d), nn.Linear(d, d)               # pretrained W_K, W_V (+ b)
        self.experts = nn.Parameter(torch.empty(H, N, d, e))                  # W_Q(n)^(h)
        self.expert_bias = nn.Parameter(torch.empty(H, N, e)) if expert_bias else None
        self.router = nn.Parameter(torch.empty(H, N * e, N))                  # W_exp^(h)
        self.p_attn = attn_dropout

    def reset_parameters(self, std: float) -> None:
        """Experts and router ~ N(0, std), expert biases 0 (K/V are initialised by ``init_normal``)."""
        nn.init.normal_(self.experts, 0.0, std)
        nn.init.normal_(self.router, 0.0, std)
        if self.expert_bias is not None:
            nn.init.zeros_(self.expert_bias)

    def heads(self, x: Tensor, layout: TokenLayout) -> Tensor:
        """[T, d] → [B, H, W, d'] per-head keys/values in the attention layout."""
        return layout.pad(x.view(-1, self.n_heads, self.d_head)).transpose(1, 2)

    def forward(self, x: Tensor, layout: TokenLayout, return_attention: bool = False, last_only: bool = False
                ) -> tuple[Tensor, Tensor, Tensor | None]:
        k, v = self.heads(self.key(x), layout), self.heads(self.value(x), layout)    # [B, H, W, d']
        xq = layout.last_tokens(x) if last_only else x                               # [Tq, d]
        q = torch.einsum("td,hnde->thne", xq, self.experts)                          # [Tq, H, N, d']
        if self.expert_bias is not None:
            q = q + self.expert_bias
        q = (q[:, None] if last_only else layout.pad(q)).permute(0, 2, 3, 1, 4)     # [B, H, N, Wq, d']
        mask = layout.attention[:, :, -1:] if last_only else layout.attention       # [B, 1, Wq, W]
        scores = torch.einsum("bhnle,bhje->bhnlj", q, k) / math.sqrt(self.d_head)   # [B, H, N, Wq, W]
        probs = masked_softmax(scores, mask[:, :, None])                           # α̃ (Eq. 14)
        dropped = (F.dropout(probs, self.p_attn, self.training) if last_only
                   else layout.attention_dropout(probs, self.p_attn, self.training))
        outputs = torch.einsum("bhnlj,bhje->blhne", dropped, v)                     # f_n (Eq. 15) [B, Wq, H, N, d']
        outputs = outputs[:, 0] if last_only else layout.unpad(outputs)             # [Tq, H, N, d']
        concat = outputs.flatten(2)                                                 # [Tq, H, N·d']
        beta = torch.softmax(torch.einsum("thk,hkn->thn", concat, self.router), -1)   # [Tq, H, N]
        f = torch.einsum("thn,thne->the", beta, outputs)                            # [Tq, H, d']
        mixed = None
        if return_attention:
            beta_l = beta[:, None] if last_only else layout.pad(beta)               # [B, Wq, H, N]
            mixed = torch.einsum("blhn,bhnlj->bhlj", beta_l, probs)                 # [B, H, Wq, W]
        return f, beta, mixed


class Fame(SequentialModel):
    """FAME on a SASRec backbone; build with ``from_split``, then ``load_pretrained`` a SASRec-CE checkpoint.

    ``packed`` as SASRec's: compute on the real tokens only (False: on every padded position).
    """

    packed: bool = True

    def __init__(self, config: FameConfig, n_items: int) -> None:
        super().__init__()
        c = config
        self.config, self.n_items = c, n_items
        d_head = c.d // c.n_heads
        self.encoder = SequenceEncoder(c.sasrec_config(), n_items, c.n_blocks - 1)   # blocks 1..n_blocks-1
        self.moe = MoEAttention(c.d, c.n_heads, c.n_experts, c.attn_dropout, c.expert_bias)
        self.residual_norm = nn.LayerNorm(d_head, eps=c.ln_eps) if c.attn_residual == "slice" else None
        self.p_residual = c.hidden_dropout
        self.head_ffn = FeedForward(d_head, "relu_dd", c.hidden_dropout, c.ln_eps)  # FFN' + LN_d' (Eq. 7)
        self.facets = nn.Linear(c.d, c.d, bias=False)      # x @ weight.T = x [W_f^(1) | … | W_f^(H)] (Eq. 9)
        self.gate = nn.Linear(c.d, c.n_heads)              # W_g, b_g (Eq. 10)
        init_normal(self, c.init_std)
        self.moe.reset_parameters(c.init_std)
        if c.wf_init == "block_selector":
            nn.init.eye_(self.facets.weight)

    @classmethod
    def from_split(cls, config: FameConfig, split: SplitData) -> "Fame":
        return cls(config, split.n_items)

    @property
    def item_embedding(self) -> Tensor:
        """[V, d] the shared item table E (row 0 = padding)."""
        return self.encoder.embedding.item.weight

    def item_facets(self) -> Tensor:
        """[V, d] E W_f: columns h·d'..(h+1)·d' are the head-h sub-embeddings x_v^(h) (Eq. 9)."""
        return self.facets(self.item_embedding)

    def encode(self, batch: Batch, return_attention: bool = False, last_only: bool = False
               ) -> tuple[ModelOutput, TokenLayout]:
        """States concat_h(g̃_h F^(h)) [Tq, d] at the tokens (each sequence's last with ``last_only``), extras
        ``gate`` [Tq, H], ``router`` [Tq, H, N], ``head_states`` F^(h) [Tq, H, d'], and the layout."""
        layout = TokenLayout.from_items(batch.items, self.packed and not return_attention)
        out = self.encoder(batch.items, layout, return_attention)
        x = out.states                                                            # [T, d]
        f, beta, mixed = layout.per_bucket(lambda bucket, xs: self.moe(xs, bucket, return_attention, last_only),
                                           x, last_only)                          # [Tq, H, d'], [Tq, H, N]
        if last_only:
            x = layout.last_tokens(x)
        H = self.config.n_heads
        if self.residual_norm is not None:
            dropped = (F.dropout(f, self.p_residual, self.training) if last_only
                       else layout.dropout(f, self.p_residual, self.training, heads_first=True))
            f = self.residual_norm(x.view(len(x), H, -1) + dropped)
        heads = self.head_ffn(f, None if last_only else layout, heads_first=True)  # F^(h): [Tq, H, d']
        gate = torch.softmax(self.gate(heads.flatten(1)), -1)                     # [Tq, H]
        out.states = (gate[..., None] * heads).flatten(1)                         # [Tq, d]
        out.extras = {"gate": gate, "router": beta, "head_states": heads}
        if return_attention:
            out.attention.append(mixed)
            out.head_outputs.append(layout.pad(heads).transpose(1, 2))            # [B, H, L, d']
        return out, layout

    def forward(self, batch: Batch, return_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """States [B, L, d] (or [B, 1, d] with ``last_only``); extras ``gate`` [B, L, H], ``router``
        [B, H, L, N], ``head_states`` F^(h) [B, L, H, d']. With ``return_attention`` the last entries of
        ``attention`` and ``head_outputs`` are the final layer's Ā [B, H, L, L] and F^(h) [B, H, L, d']."""
        out, layout = self.encode(batch, return_attention, last_only)
        full = (lambda t: t[:, None]) if last_only else layout.to_full
        out.states = full(out.states)
        out.extras = {"gate": full(out.extras["gate"]), "router": full(out.extras["router"]).transpose(1, 2),
                      "head_states": full(out.extras["head_states"])}
        return out

    def head_scores(self, out: ModelOutput) -> Tensor:
        """[B, H, V] each head's own logits x_v^(h)ᵀ F^(h) at the last position (Eq. 8)."""
        V, H = self.n_items + 1, self.config.n_heads
        facets = self.item_facets().view(V, H, -1)                                 # [V, H, d']
        return torch.einsum("bhe,vhe->bhv", out.extras["head_states"][:, -1], facets)

    def mixture_log_probs(self, head_states: Tensor, gate: Tensor) -> Tensor:
        """F^(h) [P, H, d'] and g̃ [P, H] → [P, n_items] log Σ_h g̃_h softmax(s^(h))_v over items 1..n_items."""
        facets = self.item_facets()[1:].view(self.n_items, self.config.n_heads, -1)   # [n_items, H, d']
        logits = torch.einsum("phe,vhe->phv", head_states, facets).float()            # [P, H, n_items]
        return torch.logsumexp(gate.float().log()[..., None] + logits.log_softmax(-1), dim=1)

    def score(self, out: ModelOutput, batch: Batch, candidates: Tensor | None = None) -> Tensor:
        """Logit mixture: s_v [B, V] (or [B, C]). Probability mixture: p_v, with 0 for padding."""
        if self.config.mixture == "probability":
            last = self.mixture_log_probs(out.extras["head_states"][:, -1], out.extras["gate"][:, -1])
            full = F.pad(last.exp(), (1, 0))                                      # [B, V]
            return full if candidates is None else full.gather(1, candidates)
        state = out.states[:, -1]                                                 # [B, d]
        if candidates is None:
            return state @ self.item_facets().T                                   # [B, V]
        return candidate_scores(state, self.facets(self.item_embedding), candidates)   # [B, C]

    def loss(self, batch: Batch) -> Tensor:
        """CE of the mixed logits over items 1..n_items at the target positions (docs/fame.md §6), or
        -log Σ_h g̃_h softmax(s^(h))_target with ``mixture='probability'``."""
        out, layout = self.encode(batch)
        where = layout.from_full(target_positions(batch.targets, self.config.loss_positions))   # [T]
        targets = layout.from_full(batch.targets)[where]                          # [P]
        if self.config.mixture == "logit":
            return item_cross_entropy(out.states[where], self.item_facets(), targets)
        log_p = self.mixture_log_probs(out.extras["head_states"][where], out.extras["gate"][where])
        return -log_p.gather(1, (targets - 1)[:, None]).mean()

    @torch.no_grad()
    def load_pretrained(self, source: SASRec | Mapping[str, Tensor]) -> None:
        """Copy a SASRec-CE (model or state dict) with the same backbone (docs/fame.md §8): embeddings, input
        LayerNorm, blocks 1..n_blocks-1 and the last block's W_K, b_K, W_V, b_V; its W_Q (and b_Q into
        expert biases) for N = 1 or ``expert_init='pretrained_noise'``. Other parts keep their init."""
        c = self.config
        if isinstance(source, SASRec):
            theirs, ours = source.config, c.sasrec_config()
            for name in ("d", "n_blocks", "n_heads", "max_len", "ffn", "positions"):
                if getattr(theirs, name) != getattr(ours, name):
                    raise ValueError(f"pretrained SASRec has {name}={getattr(theirs, name)!r}, "
                                     f"FAME needs {getattr(ours, name)!r}")
            source = source.state_dict()
        last = f"encoder.blocks.{c.n_blocks - 1}."
        if f"{last}attention.key.weight" not in source:
            raise KeyError(f"the checkpoint has no {last}attention: not a SASRec with n_blocks={c.n_blocks}")
        lower = {k.removeprefix("encoder."): v for k, v in source.items()
                 if k.startswith("encoder.") and not k.startswith(last)}
        self.encoder.load_state_dict(lower)                       # strict: every lower weight, same shapes
        for name in ("key", "value"):
            getattr(self.moe, name).load_state_dict({p: source[f"{last}attention.{name}.{p}"]
                                                     for p in ("weight", "bias")})
        if c.n_experts == 1 or c.expert_init == "pretrained_noise":
            H, e = c.n_heads, c.d // c.n_heads
            wq = source[f"{last}attention.query.weight"].T.reshape(c.d, H, e).permute(1, 0, 2)   # [H, d, d']
            self.moe.experts.copy_(wq[:, None].expand_as(self.moe.experts))
            if c.n_experts > 1:
                self.moe.experts.add_(torch.randn_like(self.moe.experts) * EXPERT_NOISE_STD)
            if self.moe.expert_bias is not None:
                bq = source[f"{last}attention.query.bias"].view(H, 1, e)
                self.moe.expert_bias.copy_(bq.expand_as(self.moe.expert_bias))
