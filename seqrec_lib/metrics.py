"""Ranks of held-out items and the ranking metrics computed from them (docs/protocol.md §2-3).

Knows nothing of models: everything here takes score tensors. A rank is 0-based and counts the candidates
scoring **strictly higher** than the target, so ties are resolved in the target's favour.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

HistoryMask = Literal["-inf", "0", "none"]
HISTORY_MASKS: tuple[str, ...] = get_args(HistoryMask)


def full_ranks(scores: Tensor, targets: Tensor, history: Tensor | tuple[Tensor, Tensor] | None = None,
               history_mask: HistoryMask = "-inf", inplace: bool = False) -> Tensor:
    """[B] long: the 0-based rank of each target among all items 1..V.

    ``scores`` [B, V+1] (column 0 is padding), ``targets`` [B] item ids in 1..V, ``history`` the items each
    user has seen: a [B, V+1] bool mask, or its True entries as (rows [n], cols [n]) (what evaluation passes,
    so no dense mask is built), or None.

    rank = #{candidates v : score_v > score_target}; ties count in the target's favour. The target's score
    is read before any masking and the target is never counted against itself. Padding id 0 is never a
    candidate. ``history_mask`` decides what happens to history items (other than the target):

    - ``"-inf"``: excluded, as if scored -inf (our default);
    - ``"0"``: their scores are set to 0 and they stay candidates (ICLRec / S3-Rec);
    - ``"none"``: no history masking (RecBole); ``history`` is ignored.

    ``inplace``: ``scores`` may be overwritten (saves a copy of [B, V+1]); a view is always copied.
    """
    _check_scores(scores, "scores")
    if history_mask not in HISTORY_MASKS:
        raise ValueError(f"history_mask must be one of {HISTORY_MASKS}, got {history_mask!r}")
    n_items = scores.shape[1] - 1
    if targets.shape != (scores.shape[0],) or targets.dtype != torch.long:
        raise ValueError(f"targets must be a [{scores.shape[0]}] long tensor, "
                         f"got shape {tuple(targets.shape)} and dtype {targets.dtype}")
    if len(targets) and (int(targets.min()) < 1 or int(targets.max()) > n_items):
        raise ValueError(f"targets must be item ids in 1..{n_items}, "
                         f"got {int(targets.min())}..{int(targets.max())}")
    if isinstance(history, Tensor) and (history.shape != scores.shape or history.dtype != torch.bool):
        raise ValueError(f"history must be a bool tensor of shape {tuple(scores.shape)} like scores, "
                         f"got shape {tuple(history.shape)} and dtype {history.dtype}")
    target_scores = scores.gather(1, targets[:, None])                   # [B, 1]
    if not inplace or scores._base is not None:                          # never write through a view
        scores = scores.clone()
    if history is not None and history_mask != "none":
        entries = history.nonzero(as_tuple=True) if isinstance(history, Tensor) else history
        scores.index_put_(entries, scores.new_tensor(-math.inf if history_mask == "-inf" else 0.0))
    scores[:, 0] = -math.inf                                              # padding is no candidate
    scores.scatter_(1, targets[:, None], -math.inf)                       # nor is the target itself
    if n_items >= 2**24:                                                  # counts past fp32's exact integers
        return (scores > target_scores).sum(1)
    # scores is ours by now: the comparison written over it as 0.0/1.0 and summed in fp32 (exact below 2^24)
    # is ~10x faster on a CPU than summing a bool tensor (whose cast to an integer type is a full copy)
    return torch.gt(scores, target_scores, out=scores).sum(1).long()


def sampled_ranks(candidate_scores: Tensor) -> Tensor:
    """[B] long: the 0-based rank of the target among sampled candidates.

    ``candidate_scores`` [B, 1+C]: column 0 is the target, columns 1..C its negatives. rank = number of
    negatives scoring strictly higher than the target (ties in the target's favour).
    """
    _check_scores(candidate_scores, "candidate_scores")
    return (candidate_scores[:, 1:] > candidate_scores[:, :1]).sum(1)


def per_user_metrics(ranks: Tensor, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, Tensor]:
    """HR@k, NDCG@k for each k and MRR of every user: [N] float64 each, from the [N] 0-based ``ranks``.

    HR@k = 1[r < k], NDCG@k = 1[r < k] / log2(r + 2) (one relevant item, so IDCG = 1), MRR = 1 / (r + 1).
    Keys: ``"HR@10"``, ``"NDCG@10"``, ..., ``"MRR"``.
    """
    if ranks.dim() != 1 or len(ranks) == 0:
        raise ValueError(f"ranks must be a non-empty 1-D tensor, got shape {tuple(ranks.shape)}")
    if int(ranks.min()) < 0:
        raise ValueError(f"ranks must be non-negative, got {int(ranks.min())}")
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    r = ranks.double()
    gain = 1.0 / torch.log2(r + 2.0)
    hits = {k: r < k for k in ks}
    out = {f"HR@{k}": hits[k].double() for k in ks}
    out.update({f"NDCG@{k}": gain * hits[k] for k in ks})
    out["MRR"] = 1.0 / (r + 1.0)
    return out


def ranking_metrics(ranks: Tensor, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """The means over users of ``per_user_metrics``: HR@k, NDCG@k for each k and MRR."""
    return {name: values.mean().item() for name, values in per_user_metrics(ranks, ks).items()}


def _check_scores(scores: Tensor, name: str) -> None:
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"{name} must be a [B, n >= 2] tensor, got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {scores.dtype}")
    if not bool(torch.isfinite(scores.sum())) and bool(torch.isnan(scores).any()):   # one cheap pass first
        raise ValueError(f"{name} contain NaN; a NaN target would silently rank first")
