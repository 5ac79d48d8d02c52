"""Analyses of trained models through the ``SequentialModel`` interface only.

- Head diversity (docs/analysis.md §1): per user and layer, the mean pairwise Frobenius distance between heads'
  attention maps and head outputs restricted to the user's non-padded positions; aggregated over users
  with a percentile-bootstrap CI, plus a paired bootstrap between two models on the same users.
- FAME case study (docs/analysis.md §2, Figure 7): per-head top-k lists, gate weights, the combined list, a
  baseline's list (the pretrained SASRec) and the target's rank in each, with item facets when known.
- Gate trust (Figure 7's claim over every user): how often the gate trusts the head that ranks the target best.
- Head-facet alignment (synthetic data): per head, the share of its top-k items that carry the user's
  dominant label(s) of a facet.

Every forward pass runs in eval mode without gradients inside a forked RNG seeded with ``seed``, as
``evaluation.evaluate`` does, so models with evaluation-time noise (MOJITO) give reproducible maps and
the caller's RNG state is untouched. Ranks are 0-based and follow ``metrics.full_ranks`` (history items
other than the target excluded, ties in the target's favour); top-k lists exclude the same items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from .batch import Batch
from .data.sequences import History, SequenceData, SplitData
from .metrics import full_ranks
from .models.base import ModelOutput, SequentialModel

__all__ = [
    "HeadDistances", "per_user_head_distances", "diversity_table", "head_diversity", "bootstrap_ci",
    "paired_bootstrap", "compare_head_diversity", "mean_over_seeds", "seeds_diversity_table", "CaseStudy",
    "case_study", "facet_table",
    "head_facet_alignment", "gate_trust", "head_distance_matrices", "attention_maps",
]

# bootstrap resamples are drawn in batches of about this many values (users × columns per resample), to
# bound memory for many users
_BOOT_CHUNK = 4_000_000


# ---------------------------------------------------------------------------------------------------------
# shared plumbing


@contextmanager
def _analysis_mode(models: Sequence[SequentialModel], seed: int) -> Iterator[None]:
    """Eval mode, no grad, and the global RNG (CPU and every CUDA device) forked and seeded with ``seed``;
    the models' train/eval modes are restored afterwards."""
    was_training = [m.training for m in models]
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())), torch.no_grad():
        torch.manual_seed(seed)
        for m in models:
            m.eval()
        try:
            yield
        finally:
            for m, mode in zip(models, was_training):
                m.train(mode)


def _rows_and_history(split: SplitData, which: str) -> tuple[Batch, History]:
    """The samples analysed for ``which`` and the history masked when ranking their last target.

    ``valid`` / ``test``: the evaluation sets (input s[:-2] / s[:-1]). ``train``: the last training target
    (input s[:-3], target s[-3]), needing one training sample per user; its ranking history is the
    validation history s[:-2] (the target itself is never excluded, so this is s[:-3]).
    """
    if which in ("valid", "test"):
        return split.eval_set(which), split.history(which)
    if which == "train":
        users = split.train.users
        if len(users) != split.n_users or len(torch.unique(users)) != len(users):
            raise ValueError("which='train' needs one training sample per user (a split built with "
                             "samples_step=None); this split has training windows")
        return split.train, split.valid_history
    raise ValueError(f"which must be 'valid', 'test' or 'train', got {which!r}")


def _seed_check(seed: int, n_boot: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")


# ---------------------------------------------------------------------------------------------------------
# bootstrap


def _bootstrap_columns(values: np.ndarray, n_boot: int, seed: int, level: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[n, q] → (mean [q], lo [q], hi [q]): the sample means and their percentile-bootstrap interval from
    ``scipy.stats.bootstrap`` — ``n_boot`` resamples of the n rows, the same resamples for every column, drawn
    from ``np.random.default_rng(seed)`` in batches of about ``_BOOT_CHUNK`` values to bound memory. A column
    without spread (n = 1, or all values equal) has lo = hi = mean (scipy needs two distinct rows)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"values must be a non-empty [n, q] array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values contain NaN or inf")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    _seed_check(seed, n_boot)
    mean = values.mean(axis=0)
    lo, hi = mean.copy(), mean.copy()
    spread = np.ptp(values, axis=0) > 0
    if spread.any():
        varied = values[:, spread]
        result = stats.bootstrap((varied,), np.mean, n_resamples=n_boot, batch=max(1, _BOOT_CHUNK // varied.size),
                                 vectorized=True, axis=0, confidence_level=level, method="percentile",
                                 rng=np.random.default_rng(seed))
        lo[spread], hi[spread] = result.confidence_interval
    return mean, lo, hi


def bootstrap_ci(values: np.ndarray | Sequence[float] | Tensor, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of [n] ``values``: the sample mean and the percentile interval of the means of
    ``n_boot`` resamples with replacement (``scipy.stats.bootstrap``, method="percentile", fixed ``seed``);
    lo = hi = mean when the values do not vary (one value, or all equal)."""
    v = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    mean, lo, hi = _bootstrap_columns(v[:, None], n_boot, seed, level)
    return float(mean[0]), float(lo[0]), float(hi[0])


def paired_bootstrap(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float], n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean_diff, lo, hi) of a − b over paired [n] values (the same users in the same order): users are
    resampled jointly, so the interval is that of the mean per-user difference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D arrays of the same length, got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, n_boot, seed, level)


# ---------------------------------------------------------------------------------------------------------
# head diversity (docs/analysis.md §1)


@dataclass(frozen=True)
class HeadDistances:
    """Per-user head distances of one model, ``n`` users × ``n_layers`` layers (float64).

    - ``users`` [n] user ids, ``lengths`` [n] the number n_u of non-padded input positions;
    - ``attention`` [n, n_layers] D_att = mean over h < h' of ‖Â_h − Â_h'‖_F, Â_h = A_h[P_u, P_u];
    - ``output`` [n, n_layers] D_out = the same on Ô_h = O_h[P_u, :];
    - ``output_unit`` [n, n_layers] D_out after scaling every Ô_h to unit Frobenius norm (in [0, 2]);
    - ``n_heads`` H of each layer.
    """

    users: np.ndarray
    lengths: np.ndarray
    attention: np.ndarray
    output: np.ndarray
    output_unit: np.ndarray
    n_heads: tuple[int, ...]

    @property
    def n_layers(self) -> int:
        return len(self.n_heads)

    @property
    def attention_norm(self) -> np.ndarray:
        """[n, n_layers] D_att / √(2 n_u), in [0, 1] (each row difference of two distributions is ≤ √2)."""
        return self.attention / np.sqrt(2.0 * self.lengths)[:, None]

    def quantity(self, name: str) -> np.ndarray:
        """[n, n_layers] one of 'attention', 'attention_norm', 'output', 'output_norm' (= ``output_unit``)."""
        table = {"attention": self.attention, "output": self.output, "output_norm": self.output_unit}
        if name == "attention_norm":
            return self.attention_norm
        if name not in table:
            raise ValueError(f"unknown quantity {name!r}; known: attention, attention_norm, output, output_norm")
        return table[name]


def _pairwise_mean_distance(x: Tensor, unit: bool = False) -> Tensor:
    """[B, H, ...] → [B] float64: the mean over head pairs h < h' of ‖x_h − x_h'‖_F.

    Uses the Gram matrix in float64, ‖x_h − x_h'‖² = ‖x_h‖² + ‖x_h'‖² − 2⟨x_h, x_h'⟩, so memory does not
    grow with the number of pairs. ``unit`` scales each x_h to unit norm first (zero heads stay zero).
    """
    B, H = x.shape[:2]
    flat = x.reshape(B, H, -1).double()                                      # [B, H, M]
    if unit:
        flat = flat / flat.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    gram = flat @ flat.transpose(1, 2)                                       # [B, H, H]
    sq = gram.diagonal(dim1=1, dim2=2)                                       # [B, H]
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * gram
    i, j = torch.triu_indices(H, H, offset=1, device=x.device)
    return d2[:, i, j].clamp_min(0.0).sqrt().mean(1)                         # [B]


def _layer_distances(attention: Tensor, head_outputs: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One layer: A [B, H, L, L], O [B, H, L, d_h], valid [B, L] bool → D_att, D_out, D_out(unit) [B].

    Zeroing the padded query rows and key columns in every head leaves exactly ‖Â_h − Â_h'‖_F."""
    pair = (valid[:, :, None] & valid[:, None, :])[:, None]                  # [B, 1, L, L]
    a = attention.masked_fill(~pair, 0.0)
    o = head_outputs.masked_fill(~valid[:, None, :, None], 0.0)
    return _pairwise_mean_distance(a), _pairwise_mean_distance(o), _pairwise_mean_distance(o, unit=True)


def _check_maps(out: ModelOutput, batch: Batch, model: SequentialModel) -> None:
    name = type(model).__name__
    if not out.attention or len(out.attention) != len(out.head_outputs):
        raise ValueError(f"{name}.forward(return_attention=True) returned {len(out.attention)} attention maps "
                         f"and {len(out.head_outputs)} head outputs; need one of each per layer")
    B, L = batch.items.shape
    for layer, (a, o) in enumerate(zip(out.attention, out.head_outputs), start=1):
        if a is None or a.dim() != 4 or a.shape[0] != B or a.shape[2:] != (L, L):
            raise ValueError(f"{name} layer {layer}: attention must be [B={B}, H, L={L}, L={L}], "
                             f"got {None if a is None else tuple(a.shape)}")
        if o.dim() != 4 or o.shape[:3] != a.shape[:3]:
            raise ValueError(f"{name} layer {layer}: head outputs must be [B, H={a.shape[1]}, L={L}, d_h], "
                             f"got {tuple(o.shape)}")
        if a.shape[1] < 2:
            raise ValueError(f"{name} layer {layer} has H = {a.shape[1]} head; head diversity needs H >= 2")


def per_user_head_distances(model: SequentialModel, split: SplitData, which: str = "test",
                            batch_size: int = 256, seed: int = 0) -> HeadDistances:
    """Per-user, per-layer head distances (docs/analysis.md §1) on the ``which`` input of every user.

    Runs ``model.forward(batch, return_attention=True)`` ``batch_size`` users at a time (eval mode, no
    grad, forked RNG seeded with ``seed``: with the evaluation's batch size, a noisy model sees the same
    noise as when it is scored). The non-padded positions P_u are ``batch.items > 0``. Raises ValueError
    for a layer with H = 1.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _seed_check(seed, 1)
    batch, _ = _rows_and_history(split, which)
    per_batch: list[tuple[Tensor, Tensor, Tensor]] = []
    n_heads: tuple[int, ...] = ()
    with _analysis_mode([model], seed):
        for rows in torch.arange(len(batch), device=batch.device).split(batch_size):
            chunk = batch.select(rows)
            out = model(chunk, return_attention=True)
            _check_maps(out, chunk, model)
            heads = tuple(int(a.shape[1]) for a in out.attention)
            if n_heads and heads != n_heads:
                raise ValueError(f"heads per layer changed between batches: {n_heads} then {heads}")
            n_heads = heads
            valid = chunk.items > 0
            layers = [_layer_distances(a, o, valid) for a, o in zip(out.attention, out.head_outputs)]
            per_batch.append(tuple(torch.stack(q, 1) for q in zip(*layers)))   # 3 × [b, n_layers]
    att, outp, unit = (torch.cat(q).cpu().numpy() for q in zip(*per_batch))
    return HeadDistances(users=batch.users.cpu().numpy(), lengths=(batch.items > 0).sum(1).cpu().numpy(),
                         attention=att, output=outp, output_unit=unit, n_heads=n_heads)


def diversity_table(dist: HeadDistances, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                    normalise: bool = False) -> pd.DataFrame:
    """One row per (layer, quantity): ``layer`` (1-based), ``quantity``, ``mean``, ``ci_low``, ``ci_high``,
    ``n_users``, ``n_heads``. Quantities: attention, attention_norm, output, and output_norm when
    ``normalise``. All cells share the same ``n_boot`` user resamples (``seed``)."""
    quantities = _quantities(normalise)
    values = _quantity_values(dist, quantities)                                # [n, n_layers, n_q]
    n, n_layers, n_q = values.shape
    mean, lo, hi = _bootstrap_columns(values.reshape(n, -1), n_boot, seed, level)
    layer = np.repeat(np.arange(1, n_layers + 1), n_q)
    return pd.DataFrame({
        "layer": layer,
        "quantity": quantities * n_layers,
        "mean": mean, "ci_low": lo, "ci_high": hi,
        "n_users": n,
        "n_heads": np.asarray(dist.n_heads)[layer - 1],
    })


def _quantities(normalise: bool) -> list[str]:
    return ["attention", "attention_norm", "output"] + (["output_norm"] if normalise else [])


def _quantity_values(dist: HeadDistances, quantities: Sequence[str]) -> np.ndarray:
    """[n, n_layers, n_q]: each user's distances, layer by layer, quantity by quantity."""
    return np.stack([dist.quantity(q) for q in quantities], axis=2)


def mean_over_seeds(distances: Sequence[HeadDistances]) -> HeadDistances:
    """The per-user distances averaged over training seeds: one model per seed, scored on the same users with
    the same heads per layer (ValueError otherwise)."""
    if not distances:
        raise ValueError("mean_over_seeds needs the distances of at least one seed")
    first = distances[0]
    for other in distances[1:]:
        if not np.array_equal(other.users, first.users) or other.n_heads != first.n_heads:
            raise ValueError("the seeds' distances cover different users or heads per layer; pass one model's seeds")
    return HeadDistances(users=first.users, lengths=first.lengths,
                         attention=np.mean([d.attention for d in distances], axis=0),
                         output=np.mean([d.output for d in distances], axis=0),
                         output_unit=np.mean([d.output_unit for d in distances], axis=0), n_heads=first.n_heads)


def seeds_diversity_table(distances: Sequence[HeadDistances], n_boot: int = 2000, seed: int = 0,
                          level: float = 0.95, normalise: bool = False) -> pd.DataFrame:
    """``diversity_table`` of one model over its training seeds: ``mean`` and the bootstrap interval over users
    of the seed-averaged per-user distances (``mean_over_seeds``), then ``seed_std``, the sample std over seeds
    of the per-seed means (NaN with one seed), and ``n_seeds``."""
    table = diversity_table(mean_over_seeds(distances), n_boot, seed, level, normalise)
    quantities = _quantities(normalise)
    per_seed = np.stack([_quantity_values(d, quantities).mean(axis=0).reshape(-1) for d in distances])  # [S, L·Q]
    table["seed_std"] = per_seed.std(axis=0, ddof=1) if len(distances) > 1 else np.nan
    table["n_seeds"] = len(distances)
    return table


def head_diversity(model: SequentialModel, split: SplitData, which: str = "test", batch_size: int = 256,
                   seed: int = 0, n_boot: int = 2000, normalise: bool = False,
                   level: float = 0.95) -> pd.DataFrame:
    """The head-diversity table of docs/analysis.md §1 (see ``diversity_table``), on the ``which`` input.

    ``attention_norm`` is D_att / √(2 n_u) per user (scale-free, in [0, 1]). ``normalise`` adds
    ``output_norm``: D_out with each head's output scaled to unit Frobenius norm (in [0, 2]), which
    removes the heads' different output scales. ``seed`` seeds both the model's RNG and the bootstrap.
    ``df.attrs`` records the model class, ``which``, ``seed``, ``n_boot``, ``level`` and ``batch_size``.
    """
    dist = per_user_head_distances(model, split, which, batch_size, seed)
    table = diversity_table(dist, n_boot, seed, level, normalise)
    table.attrs.update(model=type(model).__name__, which=which, seed=seed, n_boot=n_boot, level=level,
                       batch_size=batch_size)
    return table


def compare_head_diversity(a: HeadDistances, b: HeadDistances, quantity: str = "attention",
                           n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Paired bootstrap of a − b per layer on the same users: ``layer``, ``mean_diff``, ``ci_low``,
    ``ci_high``, ``n_users``. Needs the same users in the same order and the same number of layers."""
    if not np.array_equal(a.users, b.users):
        raise ValueError("the two HeadDistances cover different users (or a different order)")
    if a.n_layers != b.n_layers:
        raise ValueError(f"different numbers of layers: {a.n_layers} vs {b.n_layers}")
    diff = a.quantity(quantity) - b.quantity(quantity)                          # [n, n_layers]
    mean, lo, hi = _bootstrap_columns(diff, n_boot, seed, level)
    return pd.DataFrame({"layer": np.arange(1, a.n_layers + 1), "quantity": quantity, "mean_diff": mean,
                         "ci_low": lo, "ci_high": hi, "n_users": len(a.users)})


# ---------------------------------------------------------------------------------------------------------
# FAME case study (docs/analysis.md §2) and facet alignment (§3)


def _excluded(history: Tensor, targets: Tensor) -> Tensor:
    """[B, V] bool: items never listed or ranked — padding and history items other than the target."""
    out = history.clone()
    out.scatter_(1, targets[:, None], False)
    out[:, 0] = True
    return out


def _top_k(scores: Tensor, excluded: Tensor, k: int) -> Tensor:
    """scores [B, ..., V], excluded [B, V] → [B, ..., k] item ids by descending score (stable: lower id
    first on ties), excluded items skipped; 0 fills slots beyond the available items."""
    shape = (scores.shape[0],) + (1,) * (scores.dim() - 2) + (scores.shape[-1],)
    masked = scores.masked_fill(excluded.view(shape), float("-inf"))
    values, ids = torch.sort(masked, dim=-1, descending=True, stable=True)
    return ids[..., :k].masked_fill(values[..., :k] == float("-inf"), 0)


def _fame_outputs(model: SequentialModel, batch: Batch) -> tuple[ModelOutput, Tensor, Tensor, Tensor]:
    """(out, gate [B, H] at the last position, head scores [B, H, V], combined scores [B, V])."""
    name = type(model).__name__
    if not hasattr(model, "head_scores"):
        raise ValueError(f"{name} has no head_scores(out): the case study needs a model with per-head "
                         f"predictions and a gate, such as FAME")
    out = model(batch)
    if "gate" not in out.extras:
        raise ValueError(f"{name}.forward gives no extras['gate'] [B, L, H]: the case study needs the gate")
    gate = out.extras["gate"][:, -1]                                          # [B, H]
    heads = model.head_scores(out)                                            # [B, H, V]
    if heads.dim() != 3 or heads.shape[:2] != gate.shape or heads.shape[2] != model.n_items + 1:
        raise ValueError(f"{name}.head_scores returned shape {tuple(heads.shape)}, expected "
                         f"[B, H={gate.shape[1]}, n_items + 1 = {model.n_items + 1}]")
    return out, gate, heads, model.score(out, batch)


@dataclass(frozen=True)
class CaseStudy:
    """One user's per-head and combined recommendations (docs/analysis.md §2). Ranks are 0-based.

    - ``history``: the input item ids without padding, oldest first; ``target``: the held-out item;
    - ``gate`` [H]: the gate weights g̃ at the last position (they sum to 1);
    - ``head_lists`` [H][k] and ``head_ranks`` [H]: each head's top-k and the target's rank;
    - ``combined_list`` / ``combined_rank``: the model's own scores (``model.predict``);
    - ``baseline_list`` / ``baseline_rank``: the baseline's (e.g. the pretrained SASRec), or None;
    - ``facets``: item id → {facet: labels} for every history, target and listed item (when data given).
    """

    user: int
    which: str
    k: int
    history: list[int]
    target: int
    gate: np.ndarray
    head_lists: list[list[int]]
    head_ranks: list[int]
    combined_list: list[int]
    combined_rank: int
    baseline_list: list[int] | None = None
    baseline_rank: int | None = None
    facets: dict[int, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def n_heads(self) -> int:
        return len(self.head_lists)


def _ids(row: Tensor) -> list[int]:
    return [int(i) for i in row.tolist() if i > 0]


def case_study(fame_model: SequentialModel, split: SplitData, user: int, k: int = 10,
               data: SequenceData | None = None, baseline: SequentialModel | None = None,
               which: str = "test", seed: int = 0) -> CaseStudy:
    """Figure 7 of FAME for ``user``: gate weights, per-head and combined top-``k``, the baseline's top-k
    and the target's rank in each (full ranking, history other than the target excluded).

    ``which='test'``: input s[:-1], target s[-1] (the reading we report); ``'valid'``: s[:-2] → s[-2];
    ``'train'``: s[:-3] → s[-3] (the other reading of the paper's item 2028). ``data`` adds item facets.
    Each model runs in eval mode in a forked RNG seeded with ``seed``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    batch, history = _rows_and_history(split, which)
    rows = torch.nonzero(batch.users == user).flatten()
    if len(rows) != 1:
        raise ValueError(f"user {user} has {len(rows)} samples in the {which!r} rows; expected exactly one")
    one = batch.select(rows)
    target = one.last_targets                                                 # [1]
    hist = history.mask(one.users, split.n_items)                             # [1, V]
    excluded = _excluded(hist, target)
    with _analysis_mode([fame_model] + ([baseline] if baseline is not None else []), seed):
        _, gate, heads, combined = _fame_outputs(fame_model, one)
        H = heads.shape[1]
        head_lists = _top_k(heads, excluded, k)[0]                            # [H, k]
        head_ranks = full_ranks(heads[0], target.expand(H), hist.expand(H, -1))
        combined_list = _top_k(combined, excluded, k)[0]
        combined_rank = full_ranks(combined, target, hist)
        base_list = base_rank = None
        if baseline is not None:
            torch.manual_seed(seed)
            base = baseline.predict(one)
            base_list, base_rank = _ids(_top_k(base, excluded, k)[0]), int(full_ranks(base, target, hist)[0])
    case = CaseStudy(
        user=user, which=which, k=k, history=_ids(one.items[0]), target=int(target[0]),
        gate=gate[0].double().cpu().numpy(), head_lists=[_ids(r) for r in head_lists],
        head_ranks=[int(r) for r in head_ranks], combined_list=_ids(combined_list),
        combined_rank=int(combined_rank[0]), baseline_list=base_list, baseline_rank=base_rank)
    if data is None:
        return case
    items = {*case.history, case.target, *case.combined_list, *(base_list or [])}
    items.update(i for lst in case.head_lists for i in lst)
    facets = {i: {f: tuple(labels[i]) for f, labels in data.item_facets.items()} for i in sorted(items)}
    return replace(case, facets=facets)


def _top_label(items: list[int], facets: dict[int, dict[str, tuple[str, ...]]], facet: str
               ) -> tuple[str | None, float]:
    """The label carried by most of ``items`` (ties: alphabetical) and the share of items carrying it."""
    counts = Counter(label for i in items for label in set(facets.get(i, {}).get(facet, ())))
    if not items or not counts:
        return None, float("nan")
    label, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return label, count / len(items)


def facet_table(case: CaseStudy) -> pd.DataFrame:
    """One row per list: ``history``, ``head 1..H``, ``combined``, ``baseline`` (when present).

    Columns: ``list``, ``gate`` (heads only), ``target_rank`` (1 = top, as in the figure; empty for the history),
    ``hit`` (rank ≤ k), ``items``
    (ids separated by spaces, the target in brackets), and per facet f: ``f_top`` the label most of the
    list's items carry and ``f_share`` the share of the list's items carrying it.
    """
    rows: list[tuple[str, float, float, list[int]]] = [("history", np.nan, np.nan, case.history)]
    rows += [(f"head {h + 1}", float(case.gate[h]), case.head_ranks[h], case.head_lists[h])
             for h in range(case.n_heads)]
    rows.append(("combined", np.nan, case.combined_rank, case.combined_list))
    if case.baseline_list is not None:
        rows.append(("baseline", np.nan, case.baseline_rank, case.baseline_list))
    facet_names = sorted({f for labels in case.facets.values() for f in labels})
    records = []
    for name, gate, rank, items in rows:
        record = {"list": name, "gate": gate, "target_rank": rank + 1,
                  "hit": (rank < case.k) if name != "history" else np.nan,
                  "items": " ".join(f"[{i}]" if i == case.target else str(i) for i in items)}
        for f in facet_names:
            record[f"{f}_top"], record[f"{f}_share"] = _top_label(items, case.facets, f)
        records.append(record)
    table = pd.DataFrame.from_records(records)
    table["target_rank"] = table["target_rank"].astype("Int64")
    return table


def _facet_incidence(labels: list[tuple[str, ...]], device: torch.device) -> Tensor:
    """[V] lists of labels → [V, n_labels] float incidence (1 where the item carries the label)."""
    counts = np.fromiter((len(t) for t in labels), dtype=np.int64, count=len(labels))
    flat = [label for t in labels for label in t]
    vocab, codes = np.unique(np.array(flat, dtype=str), return_inverse=True)
    out = torch.zeros(len(labels), len(vocab), device=device)
    rows = torch.from_numpy(np.repeat(np.arange(len(labels)), counts)).to(device)
    out[rows, torch.from_numpy(codes.astype(np.int64)).to(device)] = 1.0
    return out


def head_facet_alignment(fame_model: SequentialModel, split: SplitData,
                         item_facets: dict[str, list[tuple[str, ...]]], facet: str, k: int = 10,
                         n_labels: int = 1, which: str = "test", batch_size: int = 256, seed: int = 0,
                         n_boot: int = 2000, level: float = 0.95) -> pd.DataFrame:
    """Per head (and the combined list), the share of its top-``k`` items that carry one of the user's
    dominant ``facet`` labels, averaged over users with a bootstrap CI.

    A user's dominant labels are the ``n_labels`` labels carried by most items of their ranking history
    (labels tied with the ``n_labels``-th included); labels carried by every item (S3-Rec Sports' top category)
    are left out, since every list and chance would carry them. Lists exclude history items other than the
    target, as in ``case_study``. Users whose history carries no label of the facet are left out. Columns: ``list``,
    ``head`` (1-based; 0 for combined), ``gate`` (mean gate weight), ``share``, ``ci_low``, ``ci_high``,
    ``chance`` (mean share of a user's candidate items carrying a dominant label: a random list's share),
    ``n_users``.
    """
    if facet not in item_facets:
        raise ValueError(f"unknown facet {facet!r}; known: {sorted(item_facets)}")
    if len(item_facets[facet]) != split.n_items + 1:
        raise ValueError(f"item_facets[{facet!r}] has {len(item_facets[facet])} entries; expected "
                         f"n_items + 1 = {split.n_items + 1} (index 0 = padding)")
    if not isinstance(k, int) or k < 1 or not isinstance(n_labels, int) or n_labels < 1:
        raise ValueError(f"k and n_labels must be positive ints, got {k!r} and {n_labels!r}")
    batch, history = _rows_and_history(split, which)
    incidence = _facet_incidence(item_facets[facet], batch.device)            # [V, n_lab]
    everywhere = incidence[1:].sum(0) == split.n_items                        # a label on every item tells nothing
    incidence = incidence[:, ~everywhere]
    n_labels = min(n_labels, incidence.shape[1])
    if n_labels == 0:
        raise ValueError(f"facet {facet!r} has no label that some item lacks")
    shares, chances, gates = [], [], []
    with _analysis_mode([fame_model], seed):
        for rows in torch.arange(len(batch), device=batch.device).split(batch_size):
            chunk = batch.select(rows)
            hist = history.mask(chunk.users, split.n_items)                   # [b, V]
            excluded = _excluded(hist, chunk.last_targets)
            _, gate, heads, combined = _fame_outputs(fame_model, chunk)
            lists = torch.cat([_top_k(heads, excluded, k), _top_k(combined, excluded, k)[:, None]], 1)  # [b, H+1, k]
            counts = hist.float() @ incidence                                 # [b, n_lab] history label counts
            kth = counts.topk(n_labels, dim=1).values[:, -1:]                 # [b, 1]
            dominant = (counts >= kth) & (counts > 0)                         # [b, n_lab]
            matches = (incidence @ dominant.T.float()).T > 0                  # [b, V] item carries a dominant label
            matches[:, 0] = False
            listed = lists > 0
            hit = matches.gather(1, lists.flatten(1)).view_as(lists) & listed
            share = hit.sum(2).double() / listed.sum(2).clamp_min(1).double()   # [b, H+1]
            candidates = ~excluded
            chance = (matches & candidates).sum(1).double() / candidates.sum(1).clamp_min(1).double()
            keep = dominant.any(1)
            shares.append(share[keep]), chances.append(chance[keep]), gates.append(gate[keep].double())
    share, chance, gate = (torch.cat(x).cpu().numpy() for x in (shares, chances, gates))
    if len(share) == 0:
        raise ValueError(f"no user's history carries a label of facet {facet!r}")
    mean, lo, hi = _bootstrap_columns(share, n_boot, seed, level)
    H = share.shape[1] - 1
    return pd.DataFrame({
        "list": [f"head {h + 1}" for h in range(H)] + ["combined"],
        "head": list(range(1, H + 1)) + [0],
        "gate": list(gate.mean(0)) + [np.nan],
        "share": mean, "ci_low": lo, "ci_high": hi,
        "chance": float(chance.mean()),
        "n_users": len(share),
    })


def gate_trust(fame_model: SequentialModel, split: SplitData, k: int = 10, which: str = "test",
               batch_size: int = 256, seed: int = 0, n_boot: int = 2000, level: float = 0.95) -> pd.DataFrame:
    """Fig. 7's claim over every user: does the gate trust the head that ranks the held-out target best?

    Per user: the gate weights at the last position, each head's rank of the target (full ranking, history
    other than the target excluded, as in ``case_study``), the trusted head (largest weight). Rows, each a mean
    over its users with a bootstrap CI and what a gate blind to the heads' lists would score (``chance``):

    - ``trusted head ranks the target best``: users whose heads rank the target differently; chance 1/H;
    - ``only one head lists it in its top-k, and the gate trusts that head``: users with exactly one head
      holding the target in its top-k (the paper's user 230); chance 1/H;
    - ``weight of the trusted head``: chance 1/H (a uniform gate);
    - ``target in the combined top-k`` / ``target in some head's top-k``: HR@k of FAME and of its best head
      per user (an oracle over heads); no chance value.

    Columns: ``quantity``, ``value``, ``ci_low``, ``ci_high``, ``chance``, ``n_users``. Needs H ≥ 2.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    batch, history = _rows_and_history(split, which)
    gates, ranks, combined_ranks = [], [], []
    with _analysis_mode([fame_model], seed):
        for rows in torch.arange(len(batch), device=batch.device).split(batch_size):
            chunk = batch.select(rows)
            hist = history.mask(chunk.users, split.n_items)                   # [b, V]
            _, gate, heads, combined = _fame_outputs(fame_model, chunk)
            b, H = gate.shape
            if H < 2:
                raise ValueError(f"{type(fame_model).__name__} has {H} head: the gate has nothing to choose "
                                 f"(gate_trust needs H ≥ 2)")
            per_head = full_ranks(heads.flatten(0, 1), chunk.last_targets.repeat_interleave(H),
                                  hist.repeat_interleave(H, dim=0))          # [b * H]
            gates.append(gate.double()), ranks.append(per_head.view(b, H))
            combined_ranks.append(full_ranks(combined, chunk.last_targets, hist))
    gate, rank = torch.cat(gates).cpu().numpy(), torch.cat(ranks).cpu().numpy()
    combined_rank = torch.cat(combined_ranks).cpu().numpy()
    H = gate.shape[1]
    trusted = gate.argmax(1)
    trusted_rank = rank[np.arange(len(rank)), trusted]
    listed = rank < k                                                         # [n, H]
    differ = rank.min(1) < rank.max(1)
    single = listed.sum(1) == 1
    rows = [
        ("trusted head ranks the target best", trusted_rank[differ] == rank[differ].min(1), 1.0 / H),
        (f"only one head lists it in its top-{k}, and the gate trusts that head",
         listed[single, trusted[single]], 1.0 / H),
        ("weight of the trusted head", gate.max(1), 1.0 / H),
        (f"target in the combined top-{k}", combined_rank < k, np.nan),
        (f"target in some head's top-{k}", listed.any(1), np.nan),
    ]
    table = []
    for quantity, values, chance in rows:
        values = np.asarray(values, dtype=np.float64)
        mean, lo, hi = bootstrap_ci(values, n_boot, seed, level) if len(values) else (np.nan,) * 3
        table.append({"quantity": quantity, "value": mean, "ci_low": lo, "ci_high": hi, "chance": chance,
                      "n_users": len(values)})
    return pd.DataFrame(table)


# ---------------------------------------------------------------------------------------------------------
# head maps for heatmaps (docs/analysis.md §1): which pairs of heads differ, and one user's attention


def _pairwise_distance_matrix(x: Tensor, unit: bool = False) -> Tensor:
    """[B, H, ...] → [B, H, H] float64: ‖x_h − x_h'‖_F for every pair of heads (Gram form, as
    ``_pairwise_mean_distance``; ``unit`` scales each x_h to unit norm first)."""
    B, H = x.shape[:2]
    flat = x.reshape(B, H, -1).double()
    if unit:
        flat = flat / flat.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    gram = flat @ flat.transpose(1, 2)
    sq = gram.diagonal(dim1=1, dim2=2)
    d = (sq[:, :, None] + sq[:, None, :] - 2.0 * gram).clamp_min(0.0).sqrt()
    return d * (1.0 - torch.eye(H, dtype=d.dtype, device=d.device))          # exact zeros on the diagonal


_MATRIX_QUANTITIES = ("attention", "attention_norm", "output", "output_norm")


def head_distance_matrices(model: SequentialModel, split: SplitData, quantity: str = "attention_norm",
                           which: str = "test", batch_size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Per layer, the [H, H] matrix whose entry (h, h') is the distance between heads h and h' averaged over
    the users' ``which`` inputs, for one ``quantity`` of ``head_diversity`` (attention, attention_norm,
    output, output_norm); the mean of a matrix's off-diagonal entries is that quantity's mean in the
    diversity table. Same forward passes as ``per_user_head_distances`` (eval mode, forked RNG ``seed``)."""
    if quantity not in _MATRIX_QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; known: {', '.join(_MATRIX_QUANTITIES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _seed_check(seed, 1)
    batch, _ = _rows_and_history(split, which)
    sums: list[Tensor] = []
    with _analysis_mode([model], seed):
        for rows in torch.arange(len(batch), device=batch.device).split(batch_size):
            chunk = batch.select(rows)
            out = model(chunk, return_attention=True)
            _check_maps(out, chunk, model)
            valid = chunk.items > 0
            for layer, (a, o) in enumerate(zip(out.attention, out.head_outputs)):
                if quantity.startswith("attention"):
                    pair = (valid[:, :, None] & valid[:, None, :])[:, None]
                    d = _pairwise_distance_matrix(a.masked_fill(~pair, 0.0))
                    if quantity == "attention_norm":
                        d = d / torch.sqrt(2.0 * valid.sum(1).double())[:, None, None]
                else:
                    d = _pairwise_distance_matrix(o.masked_fill(~valid[:, None, :, None], 0.0),
                                                  unit=quantity == "output_norm")
                if layer == len(sums):
                    sums.append(d.sum(0))
                else:
                    sums[layer] = sums[layer] + d.sum(0)
    return [(s / len(batch)).cpu().numpy() for s in sums]


def attention_maps(model: SequentialModel, split: SplitData, user: int, which: str = "test",
                   seed: int = 0) -> tuple[list[int], list[np.ndarray]]:
    """One user's attention maps on the ``which`` input: (the input item ids, oldest first; per layer the
    [H, n, n] maps on those n non-padded positions, rows = query positions, columns = attended positions).
    The model runs in eval mode in a forked RNG seeded with ``seed``."""
    batch, _ = _rows_and_history(split, which)
    rows = torch.nonzero(batch.users == user).flatten()
    if len(rows) != 1:
        raise ValueError(f"user {user} has {len(rows)} samples in the {which!r} rows; expected exactly one")
    one = batch.select(rows)
    with _analysis_mode([model], seed):
        out = model(one, return_attention=True)
    if not out.attention:
        raise ValueError(f"{type(model).__name__}.forward(return_attention=True) returned no attention maps")
    valid = one.items[0] > 0
    maps = [a[0][:, valid][:, :, valid].double().cpu().numpy() for a in out.attention]
    return _ids(one.items[0]), maps
