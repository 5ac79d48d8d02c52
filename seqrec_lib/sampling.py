"""Uniform negative sampling: per-position negatives for BCE training losses, and the candidate negatives
of the sampled evaluation protocol (docs/protocol.md §3). Knows nothing of models.

Item ids are 1..n_items; 0 is padding and is never drawn. Masks are [B, n_items + 1] bool, True where
the item is excluded (column 0 is ignored).
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_REJECTION_ROUNDS = 100


def sample_negatives(targets: Tensor, n_items: int, k: int = 1, exclude: Tensor | None = None,
                     generator: torch.Generator | None = None, *,
                     max_rounds: int = MAX_REJECTION_ROUNDS) -> Tensor:
    """[B, L, k] long: ``k`` uniform negatives in 1..n_items for every position of ``targets`` [B, L].

    A draw equal to its position's target, or excluded by ``exclude`` [B, n_items + 1] bool (e.g. the
    user's whole training set, as MOJITO does), is redrawn; redraws run in vectorised rounds over the
    outstanding draws only, at most ``max_rounds`` in all. Positions whose target is 0 get 0. Draws use
    ``torch.randint`` on the targets' device (``generator`` must live there; None = global RNG).

    Raises ValueError if some position has no allowed item, RuntimeError if the rounds run out.
    """
    if targets.dim() != 2 or targets.dtype != torch.long:
        raise ValueError(f"targets must be a [B, L] long tensor, got shape {tuple(targets.shape)} "
                         f"and dtype {targets.dtype}")
    _check_positive("k", k)
    _check_positive("max_rounds", max_rounds)
    _check_ids("targets", targets, n_items, allow_zero=True)
    if exclude is not None:
        _check_mask("exclude", exclude, len(targets), n_items)
    real = targets != 0                                                   # [B, L]
    if exclude is None:
        n_allowed = torch.full_like(targets, n_items - 1)                 # all but the target
    else:
        n_allowed = n_items - exclude[:, 1:].sum(1, keepdim=True) - (~exclude.gather(1, targets)).long()
    if bool((real & (n_allowed < 1)).any()):
        raise ValueError("exclude leaves no allowed negative (item 1..n_items other than the target) at some "
                         "position with a target")

    shape = (*targets.shape, k)
    flat_targets = targets[..., None].expand(shape).reshape(-1)           # [B*L*k]
    flat_rows = torch.arange(len(targets), device=targets.device)[:, None, None].expand(shape).reshape(-1)
    out = torch.zeros(flat_targets.shape, dtype=torch.long, device=targets.device)
    todo = flat_targets.nonzero().squeeze(1)                              # draws still to make
    for _ in range(max_rounds):
        if len(todo) == 0:
            break
        draw = torch.randint(1, n_items + 1, todo.shape, generator=generator, device=targets.device)
        ok = draw != flat_targets[todo]
        if exclude is not None:
            ok &= ~exclude[flat_rows[todo], draw]
        out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if len(todo):
        fewest = int(n_allowed[real].min())
        raise RuntimeError(f"sample_negatives: {len(todo)} draws still hit their target or an excluded item "
                           f"after {max_rounds} rounds (the tightest position allows {fewest} of {n_items} "
                           f"items); raise max_rounds")
    return out.view(shape)


def sample_eval_negatives(history: Tensor, targets: Tensor, n_items: int, n: int = 100,
                          generator: torch.Generator | None = None, unique: bool = False) -> Tensor:
    """[B, n] long: ``n`` uniform negatives per user for the sampled protocol.

    Negatives are uniform over the allowed items of each row: 1..n_items minus ``history`` [B, n_items+1]
    bool and the row's target (``targets`` [B], ids in 1..n_items). This is the distribution of MOJITO's
    rejection sampler. Draws are independent (repeats allowed, as in MOJITO's code) unless ``unique``.
    Uses ``n`` float64 uniforms per row from ``generator`` (on the targets' device; None = global RNG).
    """
    _check_positive("n", n)
    uniforms = torch.rand(len(targets), n, dtype=torch.float64, generator=generator, device=targets.device)
    return eval_negatives_from_uniforms(history, targets, n_items, uniforms, unique)


def eval_negatives_from_uniforms(history: Tensor, targets: Tensor, n_items: int, uniforms: Tensor,
                                 unique: bool = False) -> Tensor:
    """[B, n] long: the deterministic map behind ``sample_eval_negatives``, from ``uniforms`` [B, n] in [0, 1).

    Row b has ``m_b`` allowed items (1..n_items minus its history and target). Independent draws take the
    ``floor(u * m_b)``-th allowed item. With ``unique``, Floyd's algorithm turns the same uniforms into a
    uniformly random set of ``n`` distinct allowed items (needs ``m_b >= n``; the order within the row is
    not random, which does not matter for ranking). A row's negatives depend only on its own uniforms, so
    drawing the uniforms for many users at once and mapping them in chunks gives chunk-independent results.
    """
    if targets.dim() != 1 or targets.dtype != torch.long:
        raise ValueError(f"targets must be a [B] long tensor, got shape {tuple(targets.shape)} "
                         f"and dtype {targets.dtype}")
    _check_ids("targets", targets, n_items, allow_zero=False)
    _check_mask("history", history, len(targets), n_items)
    if uniforms.dim() != 2 or uniforms.shape[0] != len(targets) or uniforms.shape[1] < 1 \
            or not uniforms.is_floating_point():
        raise ValueError(f"uniforms must be a float [{len(targets)}, n >= 1] tensor, got shape "
                         f"{tuple(uniforms.shape)} and dtype {uniforms.dtype}")
    allowed = ~history
    allowed[:, 0] = False
    allowed.scatter_(1, targets[:, None], False)
    counts = allowed.sum(1)                                               # [B] m_b
    needed = uniforms.shape[1] if unique else 1
    if len(counts) and int(counts.min()) < needed:
        raise ValueError(f"history leaves only {int(counts.min())} allowed negatives for some user; "
                         f"{'unique ' if unique else ''}sampling needs at least {needed}")
    if unique:
        positions = _floyd_subset(uniforms, counts)
    else:
        positions = torch.minimum((uniforms * counts[:, None]).long(), counts[:, None] - 1)
    # The item at 0-based position p among the allowed ones is the first column whose running count is p+1.
    running = allowed.cumsum(1, dtype=torch.int32)                        # [B, n_items + 1]
    return torch.searchsorted(running, (positions + 1).to(torch.int32))


def _floyd_subset(uniforms: Tensor, counts: Tensor) -> Tensor:
    """[B, n] distinct positions in 0..counts-1 per row, a uniformly random n-subset (Floyd's algorithm).

    Step s picks p uniformly in 0..top with top = m - n + s; if p is already taken it takes top, which no
    earlier step can have taken. Loops over the n draws, vectorised over rows.
    """
    n = uniforms.shape[1]
    chosen = torch.empty(uniforms.shape, dtype=torch.long, device=uniforms.device)
    for s in range(n):
        top = counts - n + s                                              # [B]
        pick = torch.minimum((uniforms[:, s] * (top + 1)).long(), top)
        taken = (chosen[:, :s] == pick[:, None]).any(1)
        chosen[:, s] = torch.where(taken, top, pick)
    return chosen


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_ids(name: str, ids: Tensor, n_items: int, allow_zero: bool) -> None:
    _check_positive("n_items", n_items)
    low = 0 if allow_zero else 1
    if ids.numel() and (int(ids.min()) < low or int(ids.max()) > n_items):
        raise ValueError(f"{name} must be item ids in {low}..{n_items}, got {int(ids.min())}..{int(ids.max())}")


def _check_mask(name: str, mask: Tensor, rows: int, n_items: int) -> None:
    if mask.shape != (rows, n_items + 1) or mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor of shape ({rows}, n_items + 1 = {n_items + 1}), "
                         f"got shape {tuple(mask.shape)} and dtype {mask.dtype}")
