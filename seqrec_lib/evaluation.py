"""Evaluate any ``SequentialModel`` on the validation or test users of a split, under one protocol.

- ``full`` (docs/protocol.md §2): rank the held-out item among all items, history masked per ``history_mask``.
- ``sampled`` (docs/protocol.md §3): rank it among 100 uniform negatives outside the history, in 5 seeded user
  cohorts; report the mean and the population std over cohorts. Every cohort user is scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from .batch import Batch
from .data.sequences import History, SplitData
from .metrics import HISTORY_MASKS, HistoryMask, full_ranks, ranking_metrics, sampled_ranks
from .models.base import SequentialModel
from .sampling import eval_negatives_from_uniforms

EvalMode = Literal["full", "sampled"]

_MASK_TEXT = {"-inf": "history masked with -inf", "0": "history scores set to 0 (ICLRec)",
              "none": "history not masked (RecBole)"}


@dataclass(frozen=True)
class EvalProtocol:
    """How to rank and average; a JSON-able record of it goes with every result.

    ``history_mask`` applies to ``full`` mode only. The ``sampled`` fields: ``n_negatives`` per user,
    ``n_cohorts`` cohorts of ``cohort_size`` users (None, or at least the number of users, means every
    user in each cohort, each cohort with its own negatives), ``unique_negatives`` (MOJITO: off). ``seed``
    seeds the cohorts, the negatives and any model randomness during evaluation. ``batch_size`` users are
    scored at a time; it does not change the results of a deterministic model.
    """

    mode: EvalMode = "full"
    history_mask: HistoryMask = "-inf"
    ks: tuple[int, ...] = (5, 10, 20)
    n_negatives: int = 100
    n_cohorts: int = 5
    cohort_size: int | None = None
    unique_negatives: bool = False
    seed: int = 0
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.mode not in get_args(EvalMode):
            raise ValueError(f"mode must be one of {get_args(EvalMode)}, got {self.mode!r}")
        if self.history_mask not in HISTORY_MASKS:
            raise ValueError(f"history_mask must be one of {HISTORY_MASKS}, got {self.history_mask!r}")
        object.__setattr__(self, "ks", tuple(self.ks))  # accept a list, e.g. from a JSON record
        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"ks must be a non-empty sequence of positive ints, got {self.ks!r}")
        for name in ("n_negatives", "n_cohorts", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.cohort_size is not None and (not isinstance(self.cohort_size, int) or self.cohort_size < 1):
            raise ValueError(f"cohort_size must be None or a positive int, got {self.cohort_size!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    def describe(self) -> str:
        """One line for under a results table."""
        metrics = f"HR/NDCG@{{{','.join(map(str, self.ks))}}}, MRR"
        if self.mode == "full":
            return f"full ranking over all items; {_MASK_TEXT[self.history_mask]}; {metrics}; all users"
        draws = "distinct" if self.unique_negatives else "independent draws"
        users = "all users" if self.cohort_size is None else f"{self.cohort_size} users"
        return (f"sampled ranking: target + {self.n_negatives} uniform negatives outside the history ({draws}); "
                f"{metrics}; mean ± population std over {self.n_cohorts} cohorts of {users}; seed {self.seed}")

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values; ``EvalProtocol(**d)`` rebuilds the protocol."""
        return dict(asdict(self), ks=list(self.ks))


def evaluate(model: SequentialModel, split: SplitData, which: Literal["valid", "test"],
             protocol: EvalProtocol = EvalProtocol()) -> dict[str, float]:
    """Metrics of ``model`` on the ``which`` users of ``split`` under ``protocol``, plus ``"n_users"``.

    Full mode: the metrics over all users. Sampled mode: each metric's mean over cohorts and its
    population std as ``"<metric>_std"``; ``n_users`` is the cohort size. Runs in eval mode without
    gradients, ``batch_size`` users at a time on the split's device. Model randomness (e.g. MOJITO's
    attention noise) comes from the global RNG seeded with ``protocol.seed`` inside a forked RNG, so results
    are reproducible and the caller's RNG state is untouched. The model's train/eval mode is restored.
    """
    batch, history = split.eval_set(which), split.history(which)
    with _evaluation_mode(model, protocol.seed):
        if protocol.mode == "full":
            ranks = _full_ranks(model, batch, history, split.n_items, protocol)
            return {**ranking_metrics(ranks, protocol.ks), "n_users": len(batch)}
        return _evaluate_sampled(model, batch, history, split.n_items, protocol)


def user_ranks(model: SequentialModel, split: SplitData, which: Literal["valid", "test"],
               protocol: EvalProtocol = EvalProtocol()) -> Tensor:
    """[N] long: the full-ranking rank of each ``which`` user's target (users in ``split.eval_set(which)``
    order), computed exactly as ``evaluate`` computes its full-mode metrics (their means over users)."""
    if protocol.mode != "full":
        raise ValueError(f"user_ranks needs a full-ranking protocol, got mode={protocol.mode!r}")
    batch, history = split.eval_set(which), split.history(which)
    with _evaluation_mode(model, protocol.seed):
        return _full_ranks(model, batch, history, split.n_items, protocol)


@contextmanager
def _evaluation_mode(model: SequentialModel, seed: int) -> Iterator[None]:
    """Eval mode, no grad, the global RNG forked (CPU and every CUDA device: ``torch.manual_seed`` reseeds
    them all) and seeded with ``seed``; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())), torch.no_grad():
        torch.manual_seed(seed)
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)


def _full_ranks(model: SequentialModel, batch: Batch, history: History, n_items: int,
                protocol: EvalProtocol) -> Tensor:
    """[N] full-ranking ranks of every user of ``batch``."""
    ranks = []
    for rows in torch.arange(len(batch), device=batch.device).split(protocol.batch_size):
        chunk = batch.select(rows)
        scores = model.predict(chunk)                                     # [b, n_items + 1]
        if scores.shape != (len(chunk), n_items + 1):
            raise ValueError(f"model.predict returned shape {tuple(scores.shape)}, "
                             f"expected ({len(chunk)}, n_items + 1 = {n_items + 1})")
        seen = None if protocol.history_mask == "none" else history.entries(chunk.users)
        ranks.append(full_ranks(scores, chunk.last_targets, seen, protocol.history_mask, inplace=True))
    return torch.cat(ranks)


def _evaluate_sampled(model: SequentialModel, batch: Batch, history: History, n_items: int,
                      protocol: EvalProtocol) -> dict[str, float]:
    """Mean and population std over cohorts of the sampled-ranking metrics."""
    per_cohort = [_cohort_metrics(model, batch, history, n_items, protocol, cohort)
                  for cohort in range(protocol.n_cohorts)]
    out: dict[str, float] = {}
    for key in per_cohort[0]:
        values = np.array([m[key] for m in per_cohort])
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    cohort_size = len(batch) if protocol.cohort_size is None else min(protocol.cohort_size, len(batch))
    return {**out, "n_users": cohort_size}


def _cohort_metrics(model: SequentialModel, batch: Batch, history: History, n_items: int,
                    protocol: EvalProtocol, cohort: int) -> dict[str, float]:
    """Sampled-ranking metrics of one cohort: its users and their negatives come from its own generator.

    The cohort's uniforms are drawn at once, so ``batch_size`` does not change any user's negatives.
    """
    generator = cohort_generator(protocol.seed, cohort, batch.device)
    rows = torch.arange(len(batch), device=batch.device)
    if protocol.cohort_size is not None and protocol.cohort_size < len(batch):
        rows = torch.randperm(len(batch), generator=generator, device=batch.device)[:protocol.cohort_size]
        rows = rows.sort().values
    uniforms = torch.rand(len(rows), protocol.n_negatives, dtype=torch.float64, generator=generator,
                          device=batch.device)
    ranks = []
    for chunk_rows, chunk_uniforms in zip(rows.split(protocol.batch_size), uniforms.split(protocol.batch_size)):
        chunk = batch.select(chunk_rows)
        targets = chunk.last_targets
        negatives = eval_negatives_from_uniforms(history.mask(chunk.users, n_items), targets, n_items,
                                                 chunk_uniforms, protocol.unique_negatives)
        candidates = torch.cat([targets[:, None], negatives], 1)         # [b, 1 + n_negatives]
        scores = model.predict(chunk, candidates)
        if scores.shape != candidates.shape:
            raise ValueError(f"model.predict returned shape {tuple(scores.shape)} for candidates of shape "
                             f"{tuple(candidates.shape)}")
        ranks.append(sampled_ranks(scores))
    return ranking_metrics(torch.cat(ranks), protocol.ks)


def cohort_generator(seed: int, cohort: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from (seed, cohort) via numpy's SeedSequence (independent streams)."""
    state = np.random.SeedSequence([seed, cohort]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))
