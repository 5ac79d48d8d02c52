"""CL4SRec (Xie et al., ICDE 2022): SASRec-CE plus a contrastive term on two augmented views of every
training sequence (docs/baselines.md §4).

    loss = CE(next item, every position)  +  λ · NT-Xent(z′, z″)

Each view applies one augmentation drawn uniformly per sequence of n items: **crop** (a contiguous run
of ⌊η·n⌋ items, at least 1, at a uniform start), **mask** (⌊γ·n⌋ items, drawn without replacement, replaced
by a mask token, id n_items + 1) or **reorder** (a run of ⌊β·n⌋ items shuffled in place). z is the
encoder's state at the view's last item; NT-Xent treats the two views of a sequence as the positive pair and
the other 2B − 2 views of the batch as negatives, with dot-product similarity over a temperature τ (ICLRec's
CL4SRec). The model is SASRec (same encoder, scores and CE); only the loss adds the views."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batch import Batch
from .sasrec import SASRec, SASRecConfig

AUGMENTATIONS = ("crop", "mask", "reorder")


@dataclass(frozen=True)
class CL4SRecConfig(SASRecConfig):
    """SASRec-CE plus the contrastive term; η, γ, β, λ and τ are ICLRec's CL4SRec defaults."""

    cl_weight: float = 0.1     # λ
    temperature: float = 1.0   # τ
    crop: float = 0.2          # η
    mask: float = 0.7          # γ
    reorder: float = 0.2       # β

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cl_weight < 0 or self.temperature <= 0:
            raise ValueError(f"cl_weight must be >= 0 and temperature > 0, got {self.cl_weight}, {self.temperature}")
        for name in ("crop", "mask", "reorder"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


def crop(items: Tensor, ratio: float, u: Tensor) -> Tensor:
    """Left-padded [B, L] → [B, L]: the run of k = max(1, ⌊ratio·n⌋) items starting at ⌊u·(n − k + 1)⌋
    (u [B] in [0, 1)), left-padded."""
    B, L = items.shape
    n = (items > 0).sum(1)
    k = torch.clamp((ratio * n).floor().long(), min=1).minimum(n)                  # [B]
    start = (u * (n - k + 1)).floor().long()                                        # [B]
    j = torch.arange(L, device=items.device)[None, :] - (L - k)[:, None]           # [B, L] index in the run
    source = (L - n + start)[:, None] + j
    return torch.where(j >= 0, items.gather(1, source.clamp(0, L - 1)), torch.zeros_like(items))


def mask(items: Tensor, ratio: float, u: Tensor, mask_id: int) -> Tensor:
    """[B, L] → [B, L] with ⌊ratio·n⌋ real items replaced by ``mask_id``: those of smallest u [B, L]."""
    real = items > 0
    rank = u.masked_fill(~real, 2.0).argsort(1).argsort(1)                          # [B, L] rank of each u
    chosen = rank < (ratio * real.sum(1)).floor().long()[:, None]
    return items.masked_fill(chosen & real, mask_id)


def reorder(items: Tensor, ratio: float, u_start: Tensor, u: Tensor) -> Tensor:
    """[B, L] → [B, L] with the run of r = ⌊ratio·n⌋ items starting at ⌊u_start·(n − r + 1)⌋ put in the
    order of u [B, L] (a uniform shuffle); the other items stay in place."""
    B, L = items.shape
    n = (items > 0).sum(1)
    r = (ratio * n).floor().long()
    first = L - n + (u_start * (n - r + 1)).floor().long()                          # [B] first column of the run
    column = torch.arange(L, device=items.device)[None, :].expand(B, L)
    inside = (column >= first[:, None]) & (column < (first + r)[:, None])
    # keys: a column's own index outside the run; inside, values in (first - 1, first + r): sorting them
    # keeps every outside column in place and fills the run's columns in the order of u
    key = torch.where(inside, first[:, None] - 0.5 + u * r[:, None], column.to(u.dtype))
    return items.gather(1, key.argsort(1))


def augment(items: Tensor, config: CL4SRecConfig, mask_id: int) -> Tensor:
    """One random view per sequence of ``items`` [B, L]: crop, mask or reorder, drawn uniformly."""
    B, L = items.shape
    rand = lambda *shape: torch.rand(*shape, device=items.device)                  # noqa: E731
    kind = torch.randint(len(AUGMENTATIONS), (B, 1), device=items.device)
    views = (crop(items, config.crop, rand(B)), mask(items, config.mask, rand(B, L), mask_id),
             reorder(items, config.reorder, rand(B), rand(B, L)))
    return torch.where(kind == 0, views[0], torch.where(kind == 1, views[1], views[2]))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float, groups: Tensor | None = None) -> Tensor:
    """z1, z2 [B, d] (two views of each sequence) → the mean over the 2B views of
    −log(exp(s(v, v⁺)) / Σ_{w ≠ v} exp(s(v, w))), with s(a, b) = a · b / τ.

    ``groups`` [B] (ICLRec's false-negative mitigation): the w of a sequence in v's group, v⁺ excepted, also
    leave the sum."""
    B = z1.shape[0]
    z = torch.cat([z1, z2]).float()                                                 # [2B, d]
    sim = (z @ z.T / temperature).fill_diagonal_(float("-inf"))                     # [2B, 2B]
    positive = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(z.device)    # the other view
    if groups is not None:
        g = torch.cat([groups, groups])                                             # [2B]
        same = g[:, None] == g[None, :]                                             # [2B, 2B]
        same[torch.arange(2 * B, device=z.device), positive] = False                # v⁺ stays
        sim = sim.masked_fill(same, float("-inf"))
    return F.cross_entropy(sim, positive)


class CL4SRec(SASRec):
    """SASRec with an extra mask-token row (id n_items + 1, used by the mask augmentation only)."""

    def __init__(self, config: CL4SRecConfig, n_items: int) -> None:
        super().__init__(config, n_items + 1)          # the item table gets the mask row
        self.n_items, self.mask_id = n_items, n_items + 1

    @property
    def item_embedding(self) -> Tensor:
        """[n_items + 1, d] the item table without the mask row (row 0 = padding)."""
        return self.encoder.embedding.item.weight[: self.n_items + 1]

    def loss(self, batch: Batch) -> Tensor:
        rec = super().loss(batch)
        if self.config.cl_weight == 0:
            return rec
        z1, z2 = (self.encode(dataclasses.replace(batch, items=augment(batch.items, self.config, self.mask_id)),
                              last_only=True)[0].states for _ in range(2))              # [B, d] each
        return rec + self.config.cl_weight * nt_xent(z1, z2, self.config.temperature)
