"""ICLRec (Chen et al., WWW 2022): CL4SRec plus a contrastive term between every augmented view and the intent
prototype of its sequence, the intents being k-means clusters of the training sequences' representations,
recomputed at the start of every epoch (docs/baselines.md §7). Sources: (paper), (code: salesforce/ICLRec's
defaults), (ours: where both are silent or we differ).

    loss = CE(next item, every position) + λ_cl · NT-Xent(z′, z″) + λ_ic · ½ Σ_{v = ′, ″} NT-Xent(h^v, c)

- CE over all items at every position of one sample per user, as SASRec-CE here (ours; the code: CE at the last
  position of every prefix).
- z′, z″ [B, d]: the states at the last item of two CL4SRec views of each sequence (``cl4srec.augment``), the
  instance term of CL4SRec here (ours; the code flattens all L positions into one [L·d] vector).
- h [B, d]: a sequence's representation, the mean of its states over its real items (``seq_repr="mean"``: paper,
  code default; the code's mean also averages the padded positions' states, ours does not) or its last state.
- Intents (paper: k-means, an E-step per epoch): at the start of every epoch (``start_epoch``, which the trainer
  calls) h of all N training sequences [N, d], in eval mode without gradients (code), clustered by ``kmeans``
  into K centroids μ [K, d] (code: faiss, 20 iterations, best of 5 runs; ours: the same in torch, an empty
  cluster refilled with the farthest point). Nothing is saved: a resumed run recomputes them from the restored
  weights with the same (seed, epoch) generator, as the uninterrupted run did.
- In a training batch, sequence b's intent is k_b = argmin_k ‖h_b − μ_k‖ with h_b from the CE pass (dropout on,
  detached) and its prototype is c_b = μ_{k_b} / ‖μ_{k_b}‖ (code: it queries the batch's own representations and
  L2-normalises the centroids).
- NT-Xent(h^v, c) is ``cl4srec.nt_xent`` with (h^v_b, c_b) as the positive pair and the batch's other views and
  prototypes as negatives, averaged over the two views (code: ``NCELoss`` in ``PCLoss``); with ``fnm`` (paper's
  false-negative mitigation, the code's ``de_noise``) the views and prototypes of the same intent are not
  negatives (in the intent term only: ours).

The model is SASRec's (encoder, scores, fused CE) with CL4SRec's mask row; only the loss and the hook differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..batch import Batch
from ..data.sequences import SplitData
from .cl4srec import CL4SRec, CL4SRecConfig, augment, nt_xent
from .losses import item_cross_entropy, target_positions
from .tokens import TokenLayout

SeqRepr = Literal["mean", "last"]
CHUNK = 1024    # sequences per encoder pass when representing the whole training set


@dataclass(frozen=True)
class ICLRecConfig(CL4SRecConfig):
    """CL4SRec's fields (λ_cl = ``cl_weight`` 0.1 is ICLRec's ``cf_weight``; τ = ``temperature`` 1.0 serves both
    terms, as ICLRec's one ``temperature``) plus the intent term; defaults: ICLRec's ``main.py``."""

    intent_weight: float = 0.3      # λ_ic, ``intent_cf_weight``
    n_intents: int = 256            # K, ``num_intent_clusters``
    seq_repr: SeqRepr = "mean"      # h, ``seq_representation_type``
    fnm: bool = False               # false-negative mitigation, ``de_noise``
    warm_up_epochs: int = 0         # epochs without the intent term, ``warm_up_epoches``
    kmeans_iters: int = 20          # Lloyd iterations, faiss's ``niter`` in ICLRec's KMeans
    kmeans_restarts: int = 5        # k-means runs per epoch, the one of least inertia kept; faiss's ``nredo``

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss != "ce":
            raise ValueError(f"ICLRec trains with loss='ce' (CE over all items), got {self.loss!r}")
        if self.intent_weight < 0:
            raise ValueError(f"intent_weight must be >= 0, got {self.intent_weight}")
        if self.seq_repr not in get_args(SeqRepr):
            raise ValueError(f"seq_repr must be one of {get_args(SeqRepr)}, got {self.seq_repr!r}")
        for name in ("n_intents", "kmeans_iters", "kmeans_restarts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warm_up_epochs < 0:
            raise ValueError(f"warm_up_epochs must be >= 0, got {self.warm_up_epochs}")


def nearest(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """x [N, d], centroids [K, d] → (each point's nearest centroid [N], lowest index on ties; its squared
    distance [N]), with ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖²."""
    d2 = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)   # [N, K]
    dist, index = d2.min(1)
    return index, dist.clamp(min=0)


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Lloyd's k-means of x [N, d] into k′ = min(k, N) clusters → (centroids [k′, d], each point's cluster [N],
    inertia Σ_n ‖x_n − μ_{a_n}‖²).

    Start: k′ distinct points of x drawn by ``generator`` (faiss's start). Each iteration assigns every point to
    its nearest centroid; each empty cluster (in index order) takes the point farthest from its centroid among
    those whose cluster keeps another point; every centroid moves to the mean of its points."""
    N, k = x.shape[0], min(k, x.shape[0])
    centroids = x[torch.randperm(N, generator=generator)[:k].to(x.device)]                  # [k, d]
    for _ in range(iters):
        assign, dist = nearest(x, centroids)                                                # [N], [N]
        counts = torch.bincount(assign, minlength=k)                                        # [k]
        for j in (counts == 0).nonzero().flatten().tolist():     # rare: duplicate points, or a cluster emptied
            i = int(dist.masked_fill(counts[assign] < 2, -1.0).argmax())
            counts[assign[i]] -= 1
            assign[i], counts[j] = j, 1
        centroids = x.new_zeros(k, x.shape[1]).index_add_(0, assign, x) / counts[:, None].to(x.dtype)
    assign, dist = nearest(x, centroids)
    return centroids, assign, dist.sum()


class ICLRec(CL4SRec):
    """CL4SRec whose loss adds the intent term; ``centroids`` [K, d] are this epoch's intents (None: no intent
    term this epoch: λ_ic = 0 or a warm-up epoch)."""

    def __init__(self, config: ICLRecConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        # k-means seed: drawn from the (run-seeded) global RNG after the initialisation, as MOJITO's FISM seed
        self.kmeans_seed = int(torch.randint(0, 2**31 - 1, ()))
        self.centroids: Tensor | None = None
        self.epoch_started = False

    def pool(self, states: Tensor, layout: TokenLayout, items: Tensor) -> Tensor:
        """Token states [T, d] of ``items`` [B, L] → h [B, d]: their mean over the real items, or the last one."""
        if self.config.seq_repr == "last":
            return layout.last_tokens(states)
        real = items > 0                                                                    # [B, L]
        return (layout.to_full(states) * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)

    def represent(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(z: the state at the last item [B, d], h [B, d]) of ``batch``'s sequences (one encoder pass)."""
        if self.config.seq_repr == "last":
            z = self.encode(batch, last_only=True)[0].states
            return z, z
        out, layout = self.encode(batch)
        return layout.last_tokens(out.states), self.pool(out.states, layout, batch.items)

    @torch.no_grad()
    def represent_all(self, train: Batch) -> Tensor:
        """h [N, d] of every sequence of ``train`` in eval mode, ``CHUNK`` at a time (the mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self.represent(train.select(torch.arange(s, min(s + CHUNK, len(train)),
                                                                       device=train.device)))[1]
                              for s in range(0, len(train), CHUNK)])
        finally:
            self.train(was_training)

    def start_epoch(self, epoch: int, split: SplitData | None = None) -> None:
        """This epoch's intents: the best of ``kmeans_restarts`` k-means runs over ``represent_all(split.train)``,
        drawn from a generator seeded by (``kmeans_seed``, ``epoch``); none when λ_ic = 0 or in a warm-up epoch."""
        c = self.config
        self.epoch_started, self.centroids = True, None
        if c.intent_weight == 0 or epoch < c.warm_up_epochs:
            return
        if split is None:
            raise ValueError("ICLRec.start_epoch needs the training split (the trainer passes it)")
        h = self.represent_all(split.train).float()                                         # [N, d]
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.kmeans_seed, epoch])
                                                      .generate_state(1)[0]))
        runs = [kmeans(h, c.n_intents, c.kmeans_iters, generator) for _ in range(c.kmeans_restarts)]
        self.centroids = min(runs, key=lambda run: float(run[2]))[0]                        # first of least inertia

    def intents(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """h [B, d] → (each sequence's intent k [B], the nearest centroid; its prototype μ_k / ‖μ_k‖ [B, d])."""
        k = nearest(h.float(), self.centroids)[0]
        return k, F.normalize(self.centroids, dim=1)[k]

    def loss(self, batch: Batch) -> Tensor:
        c = self.config
        if c.intent_weight and not self.epoch_started:
            raise RuntimeError("ICLRec needs start_epoch(epoch, split) before its loss (the trainer calls it)")
        out, layout = self.encode(batch)                                                    # states [T, d]
        targets = layout.from_full(batch.targets)                                           # [T]
        where = layout.from_full(target_positions(batch.targets, c.loss_positions))
        loss = item_cross_entropy(out.states[where], self.item_embedding, targets[where])  # SASRec-CE
        with_intents = c.intent_weight > 0 and self.centroids is not None
        if c.cl_weight == 0 and not with_intents:
            return loss
        (z1, h1), (z2, h2) = (self.represent(dataclasses.replace(
            batch, items=augment(batch.items, c, self.mask_id))) for _ in range(2))          # [B, d] each
        if c.cl_weight:
            loss = loss + c.cl_weight * nt_xent(z1, z2, c.temperature)
        if with_intents:
            k, prototypes = self.intents(self.pool(out.states.detach(), layout, batch.items))   # [B], [B, d]
            groups = k if c.fnm else None
            intent = (nt_xent(h1, prototypes, c.temperature, groups) + nt_xent(h2, prototypes, c.temperature, groups))
            loss = loss + c.intent_weight * intent / 2
        return loss
