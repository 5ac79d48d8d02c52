"""DuoRec (Qiu et al., WSDM 2022): SASRec-CE plus contrastive regularisation of the sequence representations
(docs/baselines.md §8; official code RuihongQiu/DuoRec, on RecBole).

    loss = CE(next item, every position)  +  λ · NT-Xent(h′, h_s)                    (contrast = 'us_x')

- h′ [B, d]: **unsupervised, model-level augmentation**: the training sequence encoded once more, with fresh
  dropout masks (its state at the last item);
- h_s [B, d]: **supervised positive**: the encoding (own dropout) of another training sequence with the same
  next item v as the anchor's last target;
- NT-Xent over the 2B views of the batch: dot product over τ, each view's positive the other view of its pair,
  the other 2B − 2 views its negatives (``cl4srec.nt_xent``); ``mask_same_target`` also leaves the views of
  every sequence with the same target out of the negatives (not in the released code, see below).

``contrast`` picks the official code's variants, h being the CE pass's own last state: 'un' NT-Xent(h, h′),
'su' NT-Xent(h, h_s), 'us' both terms, 'us_x' (the default, the paper's DuoRec) NT-Xent(h′, h_s).

Supervised positives (``positives``): drawn uniformly from the **whole training set**: every training prefix
s_u[max(0, k − L):k] whose next item s_u[k] (k = 1..n_u − 3, the training targets) equals v, from a user other
than the anchor's; when there is none, the anchor's own sequence (so h_s is a second dropout view). A sorted
index of the (target, user) keys is built once (``from_split``); drawing is a few ``searchsorted`` and one
gather per batch, exact and vectorised.

Paper / code / ours: the three passes, 'us_x', λ = 0.1 (``lmd``/``lmd_sem``), τ = 1, dot similarity and the
fallback to the anchor itself are the official code's; the pool of every training prefix is the code's (RecBole
trains on every prefix; its index is precomputed over them). Ours: the anchor is each training row's last
position (our rows carry a target at every position; CE still covers them all), as CL4SRec here; positives
exclude all of the anchor user's prefixes (the code excludes only the sample itself: the same as long as a user
never repeats an item, as in the Amazon files); one λ for every term (the code has ``lmd`` for 'un' and
``lmd_sem`` for the supervised terms, both 0.1); ``mask_same_target`` is an option, off by default: the released
code masks only each view's own pair (``mask_correlated_samples``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ..batch import Batch
from ..data.sequences import History, SplitData
from .cl4srec import nt_xent
from .sasrec import SASRec, SASRecConfig

Contrast = Literal["us_x", "us", "un", "su"]


@dataclass(frozen=True)
class DuoRecConfig(SASRecConfig):
    """SASRec-CE plus DuoRec's contrastive term; λ, τ and ``contrast`` are the official code's defaults."""

    cl_weight: float = 0.1            # λ (the code's lmd = lmd_sem = 0.1)
    temperature: float = 1.0          # τ
    contrast: Contrast = "us_x"
    mask_same_target: bool = False    # ours: drop same-target views from the negatives

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cl_weight < 0 or self.temperature <= 0:
            raise ValueError(f"cl_weight must be >= 0 and temperature > 0, got {self.cl_weight}, {self.temperature}")
        if self.contrast not in get_args(Contrast):
            raise ValueError(f"contrast must be one of {get_args(Contrast)}, got {self.contrast!r}")


class DuoRec(SASRec):
    """SASRec (same encoder, scores and CE) with the index of the training prefixes for supervised positives.

    Buffers (not saved with the weights; rebuilt from the split): ``flat_items`` [N] the dataset's items user by
    user, ``offsets`` [U] each user's first index, ``pool_keys`` [M] target·U + (user − 1) of every training
    prefix, sorted, and ``pool_ends`` [M] the flat index of its target (the prefix ends just before it)."""

    def __init__(self, config: DuoRecConfig, n_items: int, history: History) -> None:
        super().__init__(config, n_items)
        self.n_users = U = len(history.offsets)
        counts = (history.lengths - 1).clamp(min=0)                                   # [U] training targets
        users = torch.repeat_interleave(torch.arange(U, device=counts.device), counts)  # [M]
        first = torch.cumsum(counts, 0) - counts                                      # [U]
        k = torch.arange(len(users), device=users.device) - first[users] + 1          # [M] 1..n_u − 3
        ends = history.offsets[users] + k                                             # [M] flat index of s_u[k]
        keys = history.items[ends] * U + users
        order = torch.sort(keys, stable=True).indices                                 # by target, then user, k
        for name, value in (("flat_items", history.items), ("offsets", history.offsets),
                            ("pool_keys", keys[order]), ("pool_ends", ends[order])):
            self.register_buffer(name, value.clone(), persistent=False)

    @classmethod
    def from_split(cls, config: DuoRecConfig, split: SplitData) -> "DuoRec":
        """The pool: the training part of every user, ``split.valid_history`` (s[:-2]; targets s[1:-2])."""
        return cls(config, split.n_items, split.valid_history)

    def positives(self, batch: Batch, u: Tensor | None = None) -> Tensor:
        """[B, L] a supervised positive per row of ``batch``: uniformly (u [B] in [0, 1), drawn when None) one of
        the n training prefixes whose next item is the row's last target, from another user, as a left-padded row
        of the L items before that target; the row's own items when n = 0."""
        items, U = batch.items, self.n_users
        B, L = items.shape
        v, user = batch.targets[:, -1], batch.users - 1                               # [B] each
        search = lambda key, right=False: torch.searchsorted(self.pool_keys, key, right=right)   # noqa: E731
        lo, hi = search(v * U), search((v + 1) * U)                                   # v's block [lo, hi)
        own_lo, own_hi = search(v * U + user), search(v * U + user, right=True)       # the anchor user's part
        own = own_hi - own_lo
        n = hi - lo - own                                                             # [B] candidates
        if u is None:
            u = torch.rand(B, dtype=torch.float64, device=items.device)
        r = torch.minimum((u * n).floor().long(), (n - 1).clamp(min=0))                # [B] 0..n − 1
        pick = (lo + r + torch.where(lo + r >= own_lo, own, 0)).clamp(max=len(self.pool_keys) - 1)
        end = self.pool_ends[pick]                                                    # [B] flat index of v
        source = end[:, None] - L + torch.arange(L, device=items.device)              # [B, L]
        inside = source >= self.offsets[self.pool_keys[pick] % U][:, None]            # within that user's items
        prefix = torch.where(inside, self.flat_items[source.clamp(min=0)], 0)
        return torch.where((n > 0)[:, None], prefix, items)

    def loss(self, batch: Batch) -> Tensor:
        c = self.config
        out, layout = self.encode(batch)                                              # the CE pass, [T, d]
        rec = self.next_item_loss(out.states, layout, batch)
        if c.cl_weight == 0:
            return rec
        last = lambda b: self.encode(b, last_only=True)[0].states                     # noqa: E731  [B, d]
        h = layout.last_tokens(out.states)                                            # [B, d]
        dropped = last(batch) if c.contrast != "su" else None                         # h′
        same = last(dataclasses.replace(batch, items=self.positives(batch))) if c.contrast != "un" else None
        pairs = {"un": [(h, dropped)], "su": [(h, same)], "us": [(h, dropped), (h, same)],
                 "us_x": [(dropped, same)]}[c.contrast]
        groups = batch.targets[:, -1] if c.mask_same_target else None
        return rec + c.cl_weight * sum(nt_xent(a, b, c.temperature, groups=groups) for a, b in pairs)
