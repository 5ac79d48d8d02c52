"""MOJITO's long-term attentive FISM (docs/mojito.md §7): the pool of each user's items, the N items drawn from it
each epoch, and the attentive scores over the memory M_u = [U[u]; E[f_1..f_N]].

Shapes: B users, J scored items, N FISM items per user, d the item width, Q (user, item) pairs in the pool.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..batch import Batch
from ..data.sequences import History


def window_items(train: Batch, n_users: int, n_items: int) -> History:
    """The distinct items of each user's training windows, inputs and targets (the FISM pool, docs/mojito.md §7)."""
    items = torch.cat([train.items, train.targets], dim=1).cpu()                     # [S, 2L]
    users = train.users.cpu()[:, None].expand_as(items)
    keep = items > 0
    users, items = distinct_pairs(users[keep], items[keep], n_items)
    lengths = torch.bincount(users, minlength=n_users + 1)[1:]                        # [U]
    return History(torch.cumsum(lengths, 0) - lengths, items, lengths)


def distinct_pairs(users: Tensor, items: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """(user, item) pairs [P] → the distinct pairs [Q], sorted by user, then item."""
    key = torch.unique(users * (n_items + 1) + items)                                 # sorted
    return key // (n_items + 1), key % (n_items + 1)


def history_pairs(history: History) -> tuple[Tensor, Tensor]:
    """History → its (user, item) pairs: users [P] 1-based and items [P], on the CPU."""
    offsets, items, lengths = history.offsets.cpu(), history.items.cpu(), history.lengths.cpu()
    users = torch.repeat_interleave(torch.arange(1, len(lengths) + 1), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(int(lengths.sum())) - first.repeat_interleave(lengths)
    return users, items[offsets.repeat_interleave(lengths) + within]


def draw_items(pool_users: Tensor, pool_items: Tensor, table: Tensor, seed: int, epoch: int) -> Tensor:
    """Each user's N items, uniformly without replacement from the pool [Q] (all of them, padded with 0, when the
    pool has ≤ N), from a NumPy generator seeded by (``seed``, ``epoch``) (M15): a new table shaped like ``table``
    [U+1, N]."""
    rng = np.random.default_rng([seed, epoch])
    keys = torch.from_numpy(rng.random(len(pool_items))).to(pool_items.device)      # [Q]
    order = torch.argsort(keys)                                                       # random order ...
    order = order[torch.argsort(pool_users[order], stable=True)]                     # ... within each user
    users, items = pool_users[order], pool_items[order]                              # [Q] grouped by user
    rank = torch.arange(len(users), device=users.device) - torch.searchsorted(users, users)
    keep = rank < table.shape[1]
    drawn = torch.zeros_like(table)
    drawn[users[keep], rank[keep]] = items[keep]
    return drawn


def attention(x: Tensor, memory: Tensor, valid: Tensor, mask_padding: bool) -> Tensor:
    """a(x) = softmax(M_u x) over the N+1 rows: x [B or 1, J, d], memory [B, N+1, d], valid [B, N+1] → [B, J, N+1].
    Zero padding rows take part with logit 0 unless ``mask_padding``."""
    logits = x @ memory.transpose(1, 2)
    if mask_padding:
        logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1)


def self_score(x: Tensor, memory: Tensor, valid: Tensor, beta: float, mask_padding: bool) -> Tensor:
    """<g(x), x> with g(x) = (1-β)x + β·x⊙(a(x)ᵀM_u): x [B or 1, J, d] → [B, J] (r_long^train for x = E_j).

    Uses <x⊙z, x> = Σ_n a_n <x⊙x, M_n>, so full ranking (x = E[None]) forms no [B, V, d] tensor.
    """
    a = attention(x, memory, valid, mask_padding)                                     # [B, J, N+1]
    xx = x * x                                                                        # [B or 1, J, d]
    return (1 - beta) * xx.sum(-1) + beta * (a * (xx @ memory.transpose(1, 2))).sum(-1)


def sequence_term(seq: Tensor, memory: Tensor, valid: Tensor, beta: float, mask_padding: bool) -> Tensor:
    """Σ_l g(E[s_l]) over the given slots: seq [B, S, d] (0 at pads) → [B, d]."""
    z = attention(seq, memory, valid, mask_padding) @ memory                          # [B, S, d]
    return ((1 - beta) * seq + beta * seq * z).sum(1)
