"""The figures of the notebooks: one function per figure, each returning a ``matplotlib.figure.Figure``.

Every figure has a title, labelled axes and a legend (or a colour bar), gives each model ONE colour
(``PALETTE``, keyed by the labels of ``experiments.results_frame``: "SASRec-CE", "SASRec-BCE", "FAME w/o
MoE", "FAME", "MOJITO", "MostPop"), and states its dataset, metric and protocol (panel titles plus a
footnote line). ``save_figure(fig, out_dir, name)`` writes ``name.png`` and ``name.pdf``.

seaborn draws what it does well: the faceted grids (metric × dataset, one panel per quantity or dataset:
``FacetGrid``), means with error bars over seeds and the seeds themselves (``pointplot``, ``barplot``,
``stripplot``), histograms (``histplot``) and heatmaps (head-distance matrices, attention maps). Plain
matplotlib keeps what it does better: the learning curves, bars whose intervals were computed elsewhere
(bootstrap CIs from ``analysis``) and the case-study grid of Fig. 7. Every figure is drawn in one style
(``STYLE``) set only while it is built, so importing this module changes no global settings.

A notebook shows a figure by ending a cell with it. Figures that seaborn's ``FacetGrid`` creates are
removed from pyplot's list of open figures at once, so a notebook shows each figure once, as with the
others, which are built with ``Figure()`` directly. Headless (no display, not in a kernel) the Agg backend
is selected before pyplot is imported.
"""

from __future__ import annotations

import functools
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import matplotlib

if not os.environ.get("MPLBACKEND") and not os.environ.get("DISPLAY") and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize, to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter  # noqa: E402

__all__ = [
    "PALETTE", "PAPER_COLOUR", "STYLE", "colour", "dataset_title", "metric_column", "save_figure",
    "length_distribution_figure", "time_gaps_figure", "learning_curves_figure", "head_sweep_figure", "expert_sweep_figure",
    "head_diversity_figure", "head_distance_figure", "attention_maps_figure", "case_study_figure",
    "facet_alignment_figure", "results_figure", "markdown_table", "save_table",
]

# ---------------------------------------------------------------------------------------------------------
# one colour per model, in every figure

PALETTE: dict[str, str] = {
    "SASRec-CE": "#1f77b4",      # blue
    "SASRec-BCE": "#17becf",     # cyan
    "FAME w/o MoE": "#d62728",   # red: also the reference line of the expert sweep (FAME Fig. 6)
    "FAME": "#2ca02c",           # green
    "MOJITO": "#9467bd",         # purple
    "MostPop": "#7f7f7f",        # grey
}
ALIASES: dict[str, str] = {
    "sasrec": "SASRec-CE", "sasrec-ce": "SASRec-CE", "sasrec_ce": "SASRec-CE", "sasrec-bce": "SASRec-BCE",
    "sasrec_bce": "SASRec-BCE", "fame w/o moe": "FAME w/o MoE", "fame-wo-moe": "FAME w/o MoE",
    "fame_wo_moe": "FAME w/o MoE", "fame": "FAME", "mojito": "MOJITO", "pop": "MostPop",
    "mostpop": "MostPop", "most popular": "MostPop", "mostpopular": "MostPop",
}
PAPER_COLOUR = "black"      # the papers' numbers, wherever they are drawn
_EXTRA = ("#8c564b", "#e377c2", "#bcbd22", "#ff7f0e", "#393b79", "#637939")
_NEUTRAL = "#4a5a6a"        # non-model series (datasets, histories)
_BAND = "#e4e4e4"           # the value chosen on validation (H*, N*)
HEATMAP_CMAP = "rocket_r"   # sequential, light = small: distances and attention weights

# seaborn's "ticks" style with a light horizontal grid, matplotlib's default font sizes
STYLE: dict[str, Any] = {"axes.grid": True, "axes.grid.axis": "y", "grid.color": "#e8e8e8",
                         "axes.edgecolor": "#444444", "xtick.bottom": True, "ytick.left": True}

DATASET_TITLES: dict[str, str] = {
    "beauty": "Beauty", "sports": "Sports", "toys": "Toys", "ml-20m": "ML-20m", "ml-1m": "ML-1M",
    "ml-100k": "ML-100K", "amazon-book": "Amazon Book", "lfm-1b": "LFM-1b", "synthetic": "Synthetic",
}

# seeds numpy's global state while a figure is built (stripplot's jitter) and seaborn's bootstrap error bars
_SEED = 0

F = TypeVar("F", bound=Callable[..., Figure])


def _styled(func: F) -> F:
    """Build the figure in ``STYLE`` and with numpy's global random state seeded (both restored afterwards):
    ``stripplot`` draws its jitter from that state, so the same data gives the same figure in every process."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        state = np.random.get_state()
        np.random.seed(_SEED)
        try:
            with matplotlib.rc_context({**sns.axes_style("ticks"), **STYLE}):   # axes_style drops some keys
                return func(*args, **kwargs)
        finally:
            np.random.set_state(state)
    return wrapper  # type: ignore[return-value]


def canonical_label(label: str) -> str:
    """The palette key of a model label ("sasrec" → "SASRec-CE"); unknown labels come back unchanged."""
    if label in PALETTE:
        return label
    return ALIASES.get(str(label).strip().lower(), label)


def colour(label: str) -> str:
    """The colour of a model label; a label outside the palette gets a stable extra colour."""
    key = canonical_label(label)
    if key in PALETTE:
        return PALETTE[key]
    return _EXTRA[sum(map(ord, str(key))) % len(_EXTRA)]


def palette(labels: Sequence[str]) -> dict[str, str]:
    """``{label: colour(label)}``: the seaborn ``palette`` of these model labels."""
    return {label: colour(label) for label in labels}


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(str(name), str(name))


def metric_column(metric: str, split: str = "test", protocol: str = "full") -> str:
    """The ``results_frame`` column of a metric: ``test_full_NDCG@20``."""
    return f"{split}_{protocol}_{metric}"


def _order_labels(labels: Sequence[str]) -> list[str]:
    """Palette order first, then the rest in the order given."""
    seen = list(dict.fromkeys(labels))
    known = [k for k in PALETTE if k in seen]
    return known + [label for label in seen if label not in PALETTE]


def _footnote(fig: Figure, text: str | None, width: int | None = None) -> None:
    """A small grey note (wrapped) in a band reserved under the panels (and under a bottom legend)."""
    if not text:
        return
    width = width or max(50, int(fig.get_figwidth() * 12.5))
    wrapped = "\n".join(textwrap.fill(part, width) for part in str(text).split("\n"))
    height = fig.get_figheight()
    band = (0.17 * (wrapped.count("\n") + 1) + 0.12) / height       # figure fraction
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0.0, band, 1.0, 1.0 - band))
    fig.text(0.01, band - 0.04 / height, wrapped, ha="left", va="top", fontsize=9, color="#555555")


def _figure(n_rows: int, n_cols: int, width: float, height: float, **kw: Any) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, **kw)
    return fig, axes


def _facets(data: pd.DataFrame, width: float, height: float, **kw: Any) -> sns.FacetGrid:
    """A ``FacetGrid`` (independent axes, no despine) resized to ``width`` × ``height`` inches, taken out of
    pyplot's figure list. Call ``_relayout`` once the panels are drawn."""
    grid = sns.FacetGrid(data, sharex=False, sharey=False, despine=False, **kw)
    fig = grid.figure
    plt.close(fig)                      # the caller shows it (no second copy from the inline backend)
    fig.set_size_inches(width, height)
    return grid


def _relayout(grid: sns.FacetGrid) -> Figure:
    """Constrained layout for the drawn grid (``FacetGrid`` lays out tightly; constrained layout makes room
    for a legend outside the panels and for the footnote band); returns the figure."""
    grid.figure.set_layout_engine("constrained")
    return grid.figure


def _legend(fig: Figure, handles: Mapping[str, Any]) -> None:
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right center", frameon=False)


def _model_handle(label: str, kind: str = "line") -> Any:
    if kind == "bar":
        return Patch(facecolor=colour(label), label=label)
    return Line2D([], [], color=colour(label), marker="o", ms=5, lw=1.8, label=label)


def save_figure(fig: Figure, out_dir: str | Path, name: str, dpi: int = 150) -> list[Path]:
    """Write ``out_dir/name.png`` and ``out_dir/name.pdf``; returns both paths. The PDF carries no creation date,
    so the same figure gives the same bytes and a re-published figure shows in git only when it changed.

    The layout is computed once and then frozen (the figure keeps it): constrained layout, run again at every
    save, moves the panels by ~1e-13 and so flips the last digit the PDF writes."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15,
                    metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    return paths


def _empty(ax: Any, text: str = "no runs") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")


def _long_metrics(frame: pd.DataFrame, metrics: Sequence[str], split: str, protocol: str,
                  keys: Sequence[str]) -> pd.DataFrame:
    """``frame`` in long form: ``keys`` + ``metric`` + ``value``, one row per run and metric (NaN dropped)."""
    columns = {metric_column(m, split, protocol): m for m in metrics}
    missing = [c for c in columns if c not in frame.columns]
    if missing and len(frame):
        raise KeyError(f"the results frame has no column {missing[0]!r}; columns: {sorted(frame.columns)}")
    keys = [k for k in keys if k in frame.columns]
    present = [c for c in columns if c in frame.columns]
    long = frame[keys + present].melt(id_vars=keys, value_vars=present, var_name="metric", value_name="value")
    long["metric"] = long["metric"].map(columns)
    return long.dropna(subset=["value"])


_ONE_SEED = ("One seed per point: there is no seed spread to compare a gap with, so small differences between "
             "points (mind the y-axis range) are not evidence.")


def _several_seeds(long: pd.DataFrame, keys: Sequence[str]) -> bool:
    return bool(len(long)) and bool((long.groupby(list(keys))["value"].count() > 1).any())


# ---------------------------------------------------------------------------------------------------------
# 00_data


@_styled
def length_distribution_figure(lengths: Mapping[str, Sequence[int] | np.ndarray], max_len: int | None = None,
                               footnote: str | None = None) -> Figure:
    """One histogram per dataset of the users' sequence lengths (log-scaled axes for heavy tails), with the
    median and the truncation length ``max_len`` marked."""
    names = list(lengths)
    data = pd.DataFrame({"dataset": np.repeat(names, [len(lengths[n]) for n in names]),
                         "length": np.concatenate([np.asarray(lengths[n], dtype=float) for n in names] or [[]])})
    n = max(1, len(names))
    grid = _facets(data, width=min(max(5.5, 3.8 * n + 0.6), 16), height=3.4, col="dataset",
                   col_order=names or ["-"])
    for name, ax in zip(names or ["-"], grid.axes.flat):
        values = data.loc[data["dataset"] == name, "length"].to_numpy()
        ax.set_title(f"{dataset_title(name)}: {len(values):,} users")
        if len(values) == 0:
            _empty(ax, "no users")
            ax.set_xlabel("interactions per user")
            ax.set_ylabel("users")
            continue
        lo, hi = max(1.0, values.min()), max(values.max(), values.min() + 1)
        wide = hi / lo > 20                      # heavy-tailed (real data): log axes
        discrete = not wide and hi - lo < 60     # one bar per length
        sns.histplot(values, ax=ax, color=_NEUTRAL, alpha=0.85, edgecolor="white", linewidth=0.3, label="users",
                     log_scale=(bool(wide), False), bins="auto" if discrete else 30, discrete=bool(discrete))
        if wide:
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
        med = float(np.median(values))
        ax.axvline(med, color="black", ls="--", lw=1.2, label=f"median = {med:g}")
        if max_len is not None:
            share = float((values > max_len).mean())
            ax.axvline(max_len, color="#b8860b", ls=":", lw=1.5, label=f"max_len = {max_len} ({share:.1%} longer)")
        bottom, top = ax.get_ylim()                              # headroom for the legend
        ax.set_ylim(bottom, bottom * (top / bottom) ** 1.5 if wide else top * 1.4)
        ax.set_xlabel("interactions per user" + (" (log scale)" if wide else ""))
        ax.set_ylabel("users" + (" (log scale)" if wide else ""))
        handles, texts = ax.get_legend_handles_labels()
        order = sorted(range(len(texts)), key=lambda i: texts[i] != "users")
        ax.legend([handles[i] for i in order], [texts[i] for i in order], fontsize=7.5, loc="upper left",
                  framealpha=0.9)
    fig = _relayout(grid)
    fig.suptitle("Sequence-length distribution per dataset")
    _footnote(fig, footnote or "Lengths after preprocessing (k-core), whole sequences before the leave-one-out "
                               "split; inputs longer than max_len are left-truncated.")
    return fig


_GAP_KINDS = {"consecutive": _NEUTRAL, "validation → test": "#b8860b"}


@_styled
def time_gaps_figure(gaps: Mapping[str, pd.DataFrame], footnote: str | None = None) -> Figure:
    """One panel per dataset: the share of gaps between consecutive interactions of a user, and between each
    user's validation and test items, per gap class (``data.temporal.gap_table``: same second, up to a minute,
    an hour, a day, a week, longer). Ties (same second) are the first bar."""
    names = list(gaps)
    n = max(1, len(names))
    data = pd.concat([gaps[name].assign(dataset=name) for name in names], ignore_index=True) if names else \
        pd.DataFrame({"dataset": [], "kind": [], "gap": [], "share": []})
    grid = _facets(data, width=min(max(6.0, 4.6 * n + 1.8), 16), height=3.6, col="dataset",
                   col_order=names or ["-"])
    for name, ax in zip(names or ["-"], grid.axes.flat):
        table = data[data["dataset"] == name]
        ax.set_title(dataset_title(name))
        if table.empty:
            _empty(ax, "no timestamps")
            continue
        sns.barplot(table, x="gap", y="share", hue="kind", hue_order=list(_GAP_KINDS), palette=_GAP_KINDS, ax=ax,
                    order=list(dict.fromkeys(table["gap"])), legend=False, edgecolor="white", linewidth=0.4)
        for container in ax.containers:
            ax.bar_label(container, labels=[f"{v:.0%}" if v >= 0.005 else "" for v in container.datavalues],
                         fontsize=8, padding=1)
        ax.set_ylim(0, min(1.0, float(table["share"].max()) * 1.2 + 0.02))
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel("gap between the two interactions")
        ax.set_ylabel("share of pairs")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig = _relayout(grid)
    fig.suptitle("How far apart a user's interactions are in time")
    _legend(fig, {kind: Patch(facecolor=c, label=kind) for kind, c in _GAP_KINDS.items()})
    _footnote(fig, footnote or "consecutive: every pair of consecutive interactions of a user (time order, stable "
                               "sort); validation → test: each user's last two items, the held-out targets.")
    return fig


# ---------------------------------------------------------------------------------------------------------
# 01_train


@_styled
def learning_curves_figure(epoch_log: Sequence[Mapping[str, Any]], label: str, dataset: str,
                           metric: str = "NDCG@20", protocol: str | None = None,
                           extra_metrics: Sequence[str] = ("HR@20",)) -> Figure:
    """Training loss (left) and validation metrics (right) per epoch for one run, best epoch marked.

    ``epoch_log`` is a record's ``epoch_log``: entries {epoch, loss, valid: {metric: value}, ...}."""
    fig, axes = _figure(1, 2, width=10, height=3.6)
    ax_loss, ax_val = axes[0]
    c = colour(label)
    epochs = [int(e["epoch"]) for e in epoch_log]
    if not epochs:
        _empty(ax_loss, "no training epochs (nothing to train)")
        _empty(ax_val, "no training epochs")
    else:
        ax_loss.plot(epochs, [e["loss"] for e in epoch_log], color=c, marker="o", ms=3, label=f"{label} training loss")
        main = [e["valid"].get(metric, np.nan) for e in epoch_log]
        ax_val.plot(epochs, main, color=c, marker="o", ms=3, label=f"valid {metric}")
        for style, m in zip(("--", ":", "-."), extra_metrics):
            vals = [e["valid"].get(m, np.nan) for e in epoch_log]
            if not np.all(np.isnan(vals)):
                ax_val.plot(epochs, vals, color=c, ls=style, alpha=0.7, label=f"valid {m}")
        best = int(np.nanargmax(main)) if not np.all(np.isnan(main)) else None
        if best is not None:
            for ax in (ax_loss, ax_val):
                ax.axvline(epochs[best], color="#888888", ls=":", lw=1)
            ax_val.plot([epochs[best]], [main[best]], marker="*", ms=12, color=c, ls="none",
                        label=f"best epoch {epochs[best]} ({main[best]:.4f})")
        ax_loss.legend(fontsize=8)
        ax_val.legend(fontsize=8)
    ax_loss.set_title(f"{label} on {dataset_title(dataset)}: training loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (mean over batches)")
    ax_val.set_title(f"{label} on {dataset_title(dataset)}: validation {metric}")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel(f"validation {metric}")
    for ax in (ax_loss, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Learning curves: {label}, {dataset_title(dataset)}")
    _footnote(fig, f"Validation protocol: {protocol}" if protocol else None)
    return fig


@_styled
def runs_curves_figure(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]], str]], dataset: str,
                       footnote: str | None = None, ncols: int = 4) -> Figure:
    """Learning curves of several runs on one dataset, one column of two panels per row label (the name up to its
    first comma: "MOJITO (w/o long-term)"), wrapping after ``ncols`` labels: the validation selection metric
    (upper panel, each run's best epoch starred) and the training loss (lower panel) of each of its runs.

    ``runs``: (name, epoch_log, metric) per run, the name "<label>, <what tells its runs apart>" (seed,
    settings); the colour is the model's. A plateau after the star up to the last epoch is what early stopping
    waited out."""
    groups: dict[str, list[tuple[str, Sequence[Mapping[str, Any]], str]]] = {}
    for name, log, metric in runs:
        label, _, rest = name.partition(", ")
        groups.setdefault(label, []).append((rest or label, log, metric))
    cols = max(1, min(ncols, len(groups)))
    rows = max(1, -(-len(groups) // cols))
    fig, axes = _figure(2 * rows, cols, width=4.2 * cols, height=2.4 * 2 * rows)
    styles = ("-", "--", ":", "-.")
    for ax in axes.flat:
        ax.set_visible(False)
    for i, (label, members) in enumerate(groups.items()):
        ax_val, ax_loss = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        c = colour(label.split(" (")[0])
        for j, (rest, log, metric) in enumerate(members):
            epochs = [int(e["epoch"]) for e in log]
            values = [e["valid"].get(metric, np.nan) for e in log]
            ax_val.plot(epochs, values, color=c, ls=styles[j % len(styles)], lw=1.3, label=rest)
            ax_loss.plot(epochs, [e["loss"] for e in log], color=c, ls=styles[j % len(styles)], lw=1.3)
            if epochs and not np.all(np.isnan(values)):
                best = int(np.nanargmax(values))
                ax_val.plot([epochs[best]], [values[best]], marker="*", ms=10, color=c, ls="none")
        ax_val.set_title(label, fontsize=10)
        ax_val.set_ylabel(f"valid {members[0][2]}" if i % cols == 0 else "")
        ax_loss.set_ylabel("training loss" if i % cols == 0 else "")
        ax_loss.set_xlabel("epoch")
        ax_val.legend(fontsize=6.5, loc="lower right")
        for ax in (ax_val, ax_loss):
            ax.set_visible(True)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not runs:
        axes[0, 0].set_visible(True)
        _empty(axes[0, 0])
    fig.suptitle(f"{dataset_title(dataset)}: validation metric used for selection (★ best epoch) and training loss")
    _footnote(fig, footnote)
    return fig


# ---------------------------------------------------------------------------------------------------------
# 02 / 03: FAME Figures 5 and 6

# a reference value per dataset and metric: one number, or the per-seed values (line at their mean, band ±1 sd)
Reference = Mapping[str, Mapping[str, "float | Sequence[float]"]]


def _draw_reference(ax: Any, values: float | Sequence[float], color: str, ls: str, label: str) -> Any:
    vals = np.atleast_1d(np.asarray(values, dtype=float))
    vals = vals[~np.isnan(vals)]
    if not len(vals):
        return None
    mean = float(vals.mean())
    line = ax.axhline(mean, color=color, ls=ls, lw=1.5, label=label, zorder=1)
    if len(vals) > 1:
        sd = float(vals.std(ddof=1))
        ax.axhspan(mean - sd, mean + sd, color=color, alpha=0.12, lw=0, zorder=0)
    return line


def _sweep_figure(frame: pd.DataFrame, x: str, x_label: str, labels: Sequence[str], datasets: Sequence[str] | None,
                  metrics: Sequence[str], split: str, protocol: str, title: str, footnote: str | None,
                  mark: Mapping[str, int] | None, mark_text: str,
                  references: Sequence[tuple[Reference | None, str, str, str]], errorbar: Any) -> Figure:
    """Metric rows × dataset columns (a ``FacetGrid``); per panel the mean over seeds of each label at each
    ``x`` (``pointplot``, error bars ``errorbar`` when there are several seeds, the seeds as dots), a band at
    the ``mark`` chosen on validation, and horizontal ``references`` (values, colour, line style, text)."""
    datasets = list(datasets) if datasets is not None else list(dict.fromkeys(frame["dataset"]))
    metrics = list(metrics)
    keys = ["dataset", "label", x, "seed"]
    long = _long_metrics(frame[frame["label"].isin(labels) & frame["dataset"].isin(datasets)], metrics, split,
                         protocol, keys)
    long[x] = long[x].astype(int)
    colours = palette(labels)
    several = _several_seeds(long, ["dataset", "label", x, "metric"])
    n = max(1, len(datasets))
    grid = _facets(long, width=min(max(7.5, 3.3 * n + 2.8), 18), height=2.9 * len(metrics) + 0.6,
                   row="metric", col="dataset", row_order=metrics, col_order=datasets or ["-"])
    common = dict(x=x, y="value", hue="label", hue_order=list(labels), palette=colours, legend=False)
    if several:
        grid.map_dataframe(sns.stripplot, **common, size=3.5, alpha=0.45, jitter=0.12, zorder=1)
    grid.map_dataframe(sns.pointplot, **common, errorbar=errorbar if several else None, seed=_SEED, capsize=0.12,
                       markersize=5, linewidth=1.8, err_kws={"linewidth": 1.2})
    handles: dict[str, Any] = {label: _model_handle(label) for label in labels if label in set(long["label"])}
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(datasets or ["-"]):
            ax = grid.axes[row, col]
            sub = long[(long["metric"] == metric) & (long["dataset"] == dataset)]
            xs = sorted(set(sub[x]))               # the pointplot's categories, in this order
            for ref, ref_colour, ls, text in references:
                if ref is not None and dataset in ref and metric in ref[dataset]:
                    h = _draw_reference(ax, ref[dataset][metric], ref_colour, ls, text)
                    if h is not None:
                        handles.setdefault(text, h)
            if mark is not None and dataset in mark and int(mark[dataset]) in xs:
                at = xs.index(int(mark[dataset]))
                handles.setdefault(mark_text, ax.axvspan(at - 0.3, at + 0.3, color=_BAND, zorder=0, lw=0,
                                                         label=mark_text))
            if sub.empty:
                _empty(ax)
            ax.set_xticks(range(len(xs)), [str(v) for v in xs])
            if xs:
                ax.set_xlim(-0.5, len(xs) - 0.5)
            ax.set_title(f"({chr(97 + row * n + col)}) {dataset_title(dataset)}: {split} {metric}", fontsize=10)
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"{split} {metric}")
    fig = _relayout(grid)
    _legend(fig, handles)
    fig.suptitle(title)
    if len(long) and not several:
        footnote = (footnote + "\n" if footnote else "") + _ONE_SEED
    _footnote(fig, footnote)
    return fig


def _errorbar_text(errorbar: Any) -> str:
    kind, level = (errorbar, None) if isinstance(errorbar, str) else tuple(errorbar)
    return {"sd": "±1 std", "se": "±1 standard error", "ci": f"{level or 95}% bootstrap CI",
            "pi": f"{level or 95}% percentile interval"}.get(kind, str(errorbar))


@_styled
def head_sweep_figure(frame: pd.DataFrame, datasets: Sequence[str] | None = None,
                      metrics: Sequence[str] = ("NDCG@20", "HR@20"), split: str = "test", protocol: str = "full",
                      protocol_text: str | None = None, best_heads: Mapping[str, int] | None = None,
                      labels: Sequence[str] = ("SASRec-CE", "FAME w/o MoE"), errorbar: Any = "sd") -> Figure:
    """FAME Figure 5: SASRec vs FAME w/o MoE as the number of heads H varies; top row NDCG@20, bottom row
    HR@20, one column per dataset. ``frame`` is an ``experiments.results_frame`` (columns label, dataset,
    heads, seed, ``<split>_<protocol>_<metric>``); points are means over seeds, with error bars (seaborn's
    ``errorbar``: "sd", ("ci", 95), ...) and the single seeds as dots when there are several.
    ``best_heads`` shades the H chosen on validation."""
    note = [f"Points: {split} metrics of the best-validation checkpoint; mean over seeds (error bars: "
            f"{_errorbar_text(errorbar)}, dots: single seeds, when there are several). FAME w/o MoE is fine-tuned "
            f"from the SASRec-CE checkpoint with the same H."]
    if protocol_text:
        note.append(f"Protocol: {protocol_text}")
    return _sweep_figure(frame, "heads", "number of heads H", labels, datasets, metrics, split, protocol,
                         "Performance vs number of heads (FAME Fig. 5)", "\n".join(note), best_heads,
                         "H* chosen on validation NDCG@20", [], errorbar)


@_styled
def expert_sweep_figure(frame: pd.DataFrame, reference: Reference, heads: Mapping[str, int] | None = None,
                        datasets: Sequence[str] | None = None, metrics: Sequence[str] = ("NDCG@20", "HR@20"),
                        split: str = "test", protocol: str = "full", protocol_text: str | None = None,
                        best_experts: Mapping[str, int] | None = None, label: str = "FAME",
                        baseline: Reference | None = None, baseline_label: str = "SASRec-CE",
                        errorbar: Any = "sd") -> Figure:
    """FAME Figure 6: FAME at H* as the number of experts N varies, with a red dashed line at the best FAME
    w/o MoE (its value at H*); same layout as Figure 5. ``reference[dataset][metric]`` gives the line (one
    value, or the per-seed values: line at the mean, band ±1 std); ``baseline`` likewise adds a dotted line
    for SASRec-CE at H* (the checkpoint FAME is fine-tuned from)."""
    hs = ", ".join(f"{dataset_title(d)} H*={h}" for d, h in (heads or {}).items())
    note = [f"FAME at the H* chosen on validation in the head sweep ({hs or 'see notebook'}); mean over seeds "
            f"(error bars: {_errorbar_text(errorbar)}, dots: single seeds, when there are several). The red line is "
            f"FAME w/o MoE (N = 1) at H*" + (f", the dotted line {baseline_label} at H*" if baseline else "")
            + " (bands: ±1 std over their seeds, when there are several)."]
    if protocol_text:
        note.append(f"Protocol: {protocol_text}")
    references = [(reference, PALETTE["FAME w/o MoE"], "--", "best FAME w/o MoE (at H*)"),
                  (baseline, colour(baseline_label), ":", f"{baseline_label} (at H*)")]
    return _sweep_figure(frame, "experts", "number of experts N", [label], datasets, metrics, split, protocol,
                         "Performance vs number of experts (FAME Fig. 6)", "\n".join(note), best_experts,
                         "N* chosen on validation NDCG@20", references, errorbar)


# ---------------------------------------------------------------------------------------------------------
# 04: head diversity

_QUANTITY_TEXT = {
    "attention": ("attention maps", "mean pairwise ‖Â_h − Â_h'‖_F"),
    "attention_norm": ("attention maps, scale-free (0..1)", "D_att / √(2 n_u)"),
    "output": ("head outputs", "mean pairwise ‖Ô_h − Ô_h'‖_F"),
    "output_norm": ("head outputs, unit-norm", "D_out on unit-norm outputs (0..2)"),
}


@_styled
def head_diversity_figure(frame: pd.DataFrame, dataset: str, quantities: Sequence[str] | None = None,
                          footnote: str | None = None) -> Figure:
    """Per-layer bars with bootstrap CI whiskers of the head distances (docs/analysis.md §1), one bar per
    model, one panel per quantity.

    ``frame``: ``analysis.head_diversity`` tables concatenated with a ``label`` column (columns label,
    layer, quantity, mean, ci_low, ci_high, n_users, n_heads). seaborn lays out the grouped bars; the
    whiskers are the intervals of the table (computed by ``analysis``, not re-estimated here)."""
    quantities = list(quantities or [q for q in _QUANTITY_TEXT if q in set(frame["quantity"])])
    labels = _order_labels(list(frame["label"]))
    n = max(1, len(quantities))
    grid = _facets(frame, width=min(max(7.5, 4.2 * n + 2.2), 18), height=3.8, col="quantity",
                   col_order=quantities or ["-"])
    for ax, q in zip(grid.axes.flat, quantities or ["-"]):
        sub = frame[frame["quantity"] == q].copy()
        layers = sorted({int(v) for v in sub["layer"]})
        present = [label for label in labels if label in set(sub["label"])]
        if sub.empty:
            _empty(ax, "no model with H >= 2")
        else:
            sub["layer"] = sub["layer"].astype(int)
            sns.barplot(sub, x="layer", y="mean", hue="label", order=layers, hue_order=present,
                        palette=palette(present), errorbar=None, ax=ax, legend=False, saturation=1.0)
            for label, bars in zip(present, ax.containers):
                part = sub[sub["label"] == label].set_index("layer")
                for bar in bars:
                    layer = layers[int(round(bar.get_x() + bar.get_width() / 2))]
                    if layer not in part.index or not np.isfinite(bar.get_height()):
                        continue
                    row = part.loc[layer]
                    err = np.array([[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]).clip(min=0)
                    ax.errorbar(bar.get_x() + bar.get_width() / 2, row["mean"], yerr=err, fmt="none",
                                ecolor="#222222", elinewidth=1.2, capsize=3)
            ax.set_xticks(range(len(layers)), [f"layer {layer}" for layer in layers])
        name, ylabel = _QUANTITY_TEXT.get(q, (q, q))
        ax.set_xlabel("attention layer (1 = lowest)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{dataset_title(dataset)}: {name}", fontsize=10)
    fig = _relayout(grid)
    _legend(fig, {label: _model_handle(label, "bar") for label in labels})
    users = sorted({int(v) for v in frame.get("n_users", pd.Series(dtype=int))})
    heads = sorted({int(v) for v in frame.get("n_heads", pd.Series(dtype=int))})
    fig.suptitle(f"Head diversity on {dataset_title(dataset)}: pairwise distances between heads "
                 f"(H = {', '.join(map(str, heads)) or '?'})")
    _footnote(fig, footnote or f"Test inputs, {', '.join(map(str, users)) or '?'} users; bars: mean over users, "
                               "whiskers: 95% percentile-bootstrap interval (2,000 resamples). Compare attention "
                               "across models; output distances mainly within a model (docs/analysis.md §1).")
    return fig


def _tick_step(n: int, most: int = 12) -> int:
    return max(1, int(np.ceil(n / most)))


@_styled
def head_distance_figure(matrices: Mapping[str, Sequence[np.ndarray]], dataset: str,
                         quantity: str = "attention_norm", footnote: str | None = None) -> Figure:
    """Which pairs of heads differ: one heatmap per model (rows) and layer (columns) of the [H, H] matrix of
    distances between heads h and h', averaged over users (``analysis.head_distance_matrices``); one
    colour scale for all panels, the diagonal (a head with itself) left blank, values written in the cells
    when H ≤ 8. The mean of a matrix's off-diagonal cells is the bar of ``head_diversity_figure``."""
    labels = list(matrices)
    n_layers = max((len(m) for m in matrices.values()), default=0)
    rows, cols = max(1, len(labels)), max(1, n_layers)
    values = [np.asarray(m, dtype=float) for ms in matrices.values() for m in ms]
    off = [m[~np.eye(len(m), dtype=bool)] for m in values if len(m) > 1]
    vmax = float(max((v.max() for v in off), default=1.0)) or 1.0
    largest = max((len(m) for m in values), default=2)
    side = max(2.3, min(4.2, 0.42 * largest + 1.2))
    fig, axes = _figure(rows, cols, width=side * cols + 1.6, height=side * rows + 1.0)
    name, bar_label = _QUANTITY_TEXT.get(quantity, (quantity, quantity))
    for r, label in enumerate(labels or ["-"]):
        for c in range(cols):
            ax = axes[r, c]
            ms = matrices.get(label, [])
            if c >= len(ms):
                _empty(ax, "no layer")
                ax.set_xlabel("head h'")
                ax.set_ylabel("head h")
                continue
            m = np.asarray(ms[c], dtype=float)
            H = len(m)
            sns.heatmap(m, ax=ax, mask=np.eye(H, dtype=bool), vmin=0.0, vmax=vmax, cmap=HEATMAP_CMAP, cbar=False,
                        square=True, linewidths=0.6, linecolor="white", annot=H <= 8, fmt=".2f",
                        annot_kws={"fontsize": 9 if H <= 4 else 7.5},
                        xticklabels=[str(h + 1) for h in range(H)], yticklabels=[str(h + 1) for h in range(H)])
            ax.tick_params(length=0)
            ax.grid(False)
            ax.set_title(f"{label}, layer {c + 1}", fontsize=10, color=colour(label), fontweight="bold")
            ax.set_xlabel("head h'")
            ax.set_ylabel("head h")
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax), cmap=HEATMAP_CMAP), ax=axes, shrink=0.8, pad=0.02)
    bar.set_label(bar_label)
    fig.suptitle(f"Head distances per pair of heads on {dataset_title(dataset)}: {name}")
    _footnote(fig, footnote or "Test inputs; each cell is the distance between heads h and h' averaged over users "
                               "(docs/analysis.md §1); one colour scale for every panel; blank diagonal.")
    return fig


@_styled
def attention_maps_figure(maps: Mapping[str, np.ndarray], items: Sequence[int], dataset: str, user: int,
                          layer: int | str = "last", footnote: str | None = None) -> Figure:
    """One user's attention maps: one heatmap per model (rows) and head (columns), query positions (rows of
    a map) against the attended positions (columns), both the user's input items oldest first; the masked
    future (upper triangle) left blank; one colour scale. ``maps[label]`` is [H, n, n] (one layer of
    ``analysis.attention_maps``), ``items`` the n input item ids."""
    labels = list(maps)
    arrays = {label: np.asarray(maps[label], dtype=float) for label in labels}
    cols = max((a.shape[0] for a in arrays.values()), default=1)
    n = len(items)
    vmax = float(max((np.quantile(a, 0.995) for a in arrays.values() if a.size), default=1.0)) or 1.0
    side = max(2.6, min(4.0, 0.09 * n + 1.6))
    fig, axes = _figure(max(1, len(labels)), cols, width=side * cols + 1.6, height=side * max(1, len(labels)) + 1.0)
    step = _tick_step(n)
    ticks = [str(item) if i % step == 0 else "" for i, item in enumerate(items)]
    future = np.triu(np.ones((n, n), dtype=bool), k=1)
    for r, label in enumerate(labels or ["-"]):
        a = arrays.get(label, np.zeros((0, n, n)))
        for h in range(cols):
            ax = axes[r, h]
            if h < a.shape[0]:
                sns.heatmap(a[h], ax=ax, mask=future if a[h].shape == future.shape else None, vmin=0.0, vmax=vmax,
                            cmap=HEATMAP_CMAP, cbar=False, square=True, xticklabels=ticks, yticklabels=ticks)
                ax.tick_params(length=0, labelsize=8)
                ax.grid(False)
            else:
                _empty(ax, "no head")
            ax.set_xlabel("attended item (key)")
            ax.set_ylabel("query position (item)")
            ax.set_title(f"{label}, head {h + 1}", fontsize=10, color=colour(label), fontweight="bold")
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax), cmap=HEATMAP_CMAP), ax=axes, shrink=0.8, pad=0.02)
    bar.set_label("attention weight")
    fig.suptitle(f"Attention maps of user {user} on {dataset_title(dataset)}, {layer} layer")
    _footnote(fig, footnote or "Test input s[:-1] of the user (oldest → most recent); each row is one query "
                               "position's attention over the items up to it (rows sum to 1; the future is "
                               "masked, blank). Colour scale capped at the 99.5th percentile of all maps.")
    return fig


# ---------------------------------------------------------------------------------------------------------
# 05: case study (FAME Figure 7)


def _facet_text(labels: Mapping[str, Sequence[str]] | None, width: int = 14) -> str:
    if not labels:
        return ""
    parts = []
    for values in labels.values():
        if values:
            parts.append(",".join(str(v) for v in list(values)[:2]) + ("…" if len(values) > 2 else ""))
    text = " · ".join(parts)
    return text if len(text) <= width else text[:width - 1] + "…"


def _colour_values(case: Any, facet: str | None, rows: list[list[int]], emphasis: Sequence[str] = (),
                   n_colours: int = 8) -> dict[str, str]:
    """Labels of ``facet`` among the shown items → a qualitative colour each: first the ``emphasis``
    labels (e.g. the user's known preferences), then the target's, then the most frequent."""
    if facet is None:
        return {}
    counts: dict[str, int] = {}
    target_labels = tuple(case.facets.get(case.target, {}).get(facet, ()))
    for items in rows:
        for item in items:
            for v in case.facets.get(item, {}).get(facet, ()):
                counts[v] = counts.get(v, 0) + 1
    first = [v for v in emphasis if v in counts]
    ranked = first + sorted((v for v in counts if v not in first),
                            key=lambda v: (v not in target_labels, -counts[v], v))
    ranked = ranked[:max(n_colours, len(first))]
    cmap = matplotlib.colormaps["Set2"] if len(ranked) <= 8 else matplotlib.colormaps["tab20"]
    return {v: to_hex(cmap(i % cmap.N)) for i, v in enumerate(ranked)}


@_styled
def case_study_figure(case: Any, dataset: str, facet: str | None = None, max_history: int | None = None,
                      baseline_label: str = "SASRec-CE", model_label: str = "FAME",
                      emphasis: Sequence[str] = (), footnote: str | None = None) -> Figure:
    """FAME Figure 7 as a grid: the user's history, each head's top-k with its gate weight and the
    target's rank, the combined FAME list and the baseline's list; the ground-truth item is outlined in
    gold, cells are coloured by the item's ``facet`` label (default: the first known facet) and show the
    item id with its facet labels; ``emphasis`` labels (e.g. the user's planted preferences) get colours
    first and are marked in the legend. ``case`` is an ``analysis.CaseStudy``."""
    k = int(case.k)
    facet_names = sorted({f for labels in case.facets.values() for f in labels})
    if facet is None and facet_names:
        facet = facet_names[0]
    history = list(case.history)
    shown = max(1, (max_history or k) - 1)          # the history row ends with the target
    hist_shown = history[-shown:]
    rows: list[tuple[str, list[int], str]] = [
        (f"history (last {len(hist_shown)} of {len(history)})\n→ target", hist_shown + [case.target], _NEUTRAL)]
    for h in range(case.n_heads):
        rows.append((f"head {h + 1}: gate {float(case.gate[h]):.2f}\ntarget rank {case.head_ranks[h] + 1}",
                     list(case.head_lists[h]), colour(model_label)))
    rows.append((f"{model_label} (combined)\ntarget rank {case.combined_rank + 1}", list(case.combined_list),
                 colour(model_label)))
    if case.baseline_list is not None:
        rows.append((f"{baseline_label} (no head gate)\ntarget rank {case.baseline_rank + 1}",
                     list(case.baseline_list), colour(baseline_label)))
    n_cols = max(k, len(hist_shown) + 1)
    colours = _colour_values(case, facet, [r[1] for r in rows], emphasis)
    fig = Figure(figsize=(max(8.0, 1.05 * n_cols + 2.6), 0.78 * len(rows) + 1.9), layout="constrained")
    ax = fig.add_subplot()
    for r, (name, items, row_colour) in enumerate(rows):
        y = len(rows) - 1 - r
        for c, item in enumerate(items):
            labels = case.facets.get(item, {})
            values = labels.get(facet, ()) if facet else ()
            face = next((colours[v] for v in values if v in colours), "#f2f2f2")
            is_target = item == case.target
            ax.add_patch(Rectangle((c + 0.04, y + 0.06), 0.92, 0.8, facecolor=face,
                                   edgecolor="#d4a017" if is_target else "#bbbbbb", lw=3.2 if is_target else 0.8))
            ax.text(c + 0.5, y + 0.58, str(item), ha="center", va="center", fontsize=10.5,
                    fontweight="bold" if is_target else "normal")
            ax.text(c + 0.5, y + 0.28, _facet_text(labels), ha="center", va="center", fontsize=8.5, color="#333333")
        if r == 0:        # the target closes the history row
            c = len(items) - 1
            ax.plot([c, c], [y + 0.02, y + 0.9], color="#d4a017", ls="--", lw=1.2)
            ax.text(c + 0.5, y + 0.93, "target", ha="center", va="bottom", fontsize=9, color="#8a6d00")
    ax.set_xlim(-0.05, n_cols + 0.05)
    ax.set_ylim(-0.1, len(rows))
    ax.set_xticks([c + 0.5 for c in range(n_cols)], [str(c + 1) for c in range(n_cols)])
    ax.set_yticks([len(rows) - 1 - r + 0.46 for r in range(len(rows))], [r[0] for r in rows], fontsize=10)
    for tick, (_, _, row_colour) in zip(ax.get_yticklabels(), rows):
        tick.set_color(row_colour)
        tick.set_fontweight("bold")
    ax.tick_params(axis="both", length=0)
    ax.grid(False)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("position in the list (rank 1 = top; history: oldest → most recent, then the held-out target)")
    ax.set_ylabel("list (history, each head, combined, baseline)")
    handles: list[Any] = [Patch(facecolor="white", edgecolor="#d4a017", lw=3, label=f"ground truth: item {case.target}")]
    handles += [Patch(facecolor=c, edgecolor="#bbbbbb", label=f"{facet} {v}" + (" (preferred)" if v in emphasis else ""))
                for v, c in colours.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9.5, frameon=False,
              title=f"cell colour: {facet}" if facet else None, title_fontsize=9.5)
    which = {"test": "test target s[-1]", "valid": "validation target s[-2]",
             "train": "last training target s[-3]"}.get(case.which, case.which)
    fig.suptitle(f"Case study (FAME Fig. 7): {dataset_title(dataset)}, user {case.user}, H = {case.n_heads}, "
                 f"top-{k}, {which}")
    _footnote(fig, footnote or "Full ranking over all items with the user's history (other than the target) "
                               "excluded; ranks are 1-based. Gate weights are FAME's g̃ at the last position "
                               "(Eq. 10). Cell text: item id, then its facet labels.")
    return fig


@_styled
def facet_alignment_figure(frame: pd.DataFrame, dataset: str, facet: str, model_label: str = "FAME",
                           footnote: str | None = None) -> Figure:
    """Per head (and the combined list): the share of its top-k items carrying the user's dominant
    ``facet`` label, with bootstrap CIs and the chance level (``analysis.head_facet_alignment``)."""
    fig, axes = _figure(1, 1, width=6.2, height=3.6)
    ax = axes[0, 0]
    xs = np.arange(len(frame))
    err = np.vstack([frame["share"] - frame["ci_low"], frame["ci_high"] - frame["share"]]).clip(min=0)
    ax.bar(xs, frame["share"], yerr=err, capsize=3, color=colour(model_label), alpha=0.85,
           label=f"{model_label}: share of top-k with the user's {facet}")
    chance = float(frame["chance"].iloc[0]) if len(frame) else np.nan
    ax.axhline(chance, color="black", ls=":", lw=1.2, label=f"chance ({chance:.2f})")
    names = [f"{row.list}\n(gate {row.gate:.2f})" if pd.notna(row.gate) else str(row.list)
             for row in frame.itertuples()]
    ax.set_xticks(xs, names)
    top = float(np.nanmax(np.append(frame["ci_high"].to_numpy(dtype=float), chance))) if len(frame) else 1.0
    ax.set_ylim(0, min(1.05, max(0.1, 1.35 * top)))
    ax.set_xlabel("list")
    ax.set_ylabel(f"share with dominant {facet}")
    ax.set_title(f"{dataset_title(dataset)}: which head follows {facet}?", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Head-facet alignment ({facet})")
    n = int(frame["n_users"].iloc[0]) if len(frame) else 0
    _footnote(fig, footnote or f"Test inputs, {n} users; whiskers: 95% bootstrap interval. A user's dominant "
                               f"{facet} is the label most of their history carries.")
    return fig


# ---------------------------------------------------------------------------------------------------------
# 06: results beside the papers'


@_styled
def results_figure(frame: pd.DataFrame, metrics: Sequence[str] = ("NDCG@20", "HR@20"), split: str = "test",
                   protocol: str = "full", paper: pd.DataFrame | None = None, protocol_text: str | None = None,
                   datasets: Sequence[str] | None = None, title: str | None = None, errorbar: Any = "sd") -> Figure:
    """Our test metrics per model for each dataset (columns) and metric (rows), a ``FacetGrid`` of bars: the
    mean over seeds, with error bars (``errorbar``) and the single seeds as dots when there are several;
    the papers' values, when given (``paper``: columns dataset, label, metric, value), as black diamonds
    over the matching bar."""
    datasets = list(datasets) if datasets is not None else list(dict.fromkeys(frame["dataset"]))
    metrics = list(metrics)
    labels = _order_labels(list(frame["label"]))
    long = _long_metrics(frame[frame["dataset"].isin(datasets)], metrics, split, protocol,
                         ["dataset", "label", "seed"])
    several = _several_seeds(long, ["dataset", "label", "metric"])
    n = max(1, len(datasets))
    grid = _facets(long, width=min(max(7.5, 3.4 * n + 2.8), 18), height=2.9 * len(metrics) + 0.6,
                   row="metric", col="dataset", row_order=metrics, col_order=datasets or ["-"])
    handles: dict[str, Any] = {}
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(datasets or ["-"]):
            ax = grid.axes[row, col]
            sub = long[(long["dataset"] == dataset) & (long["metric"] == metric)]
            present = [label for label in labels if label in set(sub["label"])]
            if present:
                common = dict(x="label", y="value", hue="label", order=present, hue_order=present,
                              palette=palette(present), ax=ax, legend=False)
                sns.barplot(sub, **common, errorbar=errorbar if several else None, seed=_SEED, capsize=0.15,
                            saturation=1.0, err_kws={"linewidth": 1.2, "color": "#222222"})
                if several:
                    sns.stripplot(sub, **common, size=3.5, jitter=0.12, alpha=0.6, edgecolor="white", linewidth=0.5)
                handles.update({label: _model_handle(label, "bar") for label in present if label not in handles})
            else:
                _empty(ax)
            if paper is not None and len(paper):
                for i, label in enumerate(present):
                    hit = paper[(paper["dataset"] == dataset) & (paper["label"] == label) & (paper["metric"] == metric)]
                    if len(hit):
                        h = ax.plot([i], [float(hit["value"].iloc[0])], marker="D", ms=7, color=PAPER_COLOUR,
                                    ls="none", label="paper's value", zorder=4)[0]
                        handles.setdefault("paper's value", h)
            ax.set_xticks(range(len(present)), present, rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{dataset_title(dataset)}: {split} {metric} ({protocol})", fontsize=10)
            ax.set_xlabel("model")
            ax.set_ylabel(f"{split} {metric}")
    fig = _relayout(grid)
    _legend(fig, {label: handles[label] for label in labels if label in handles}
            | {k: v for k, v in handles.items() if k not in labels})
    fig.suptitle(title or f"Test results per model ({protocol} ranking)")
    note = [f"Bars: mean over seeds (whiskers: {_errorbar_text(errorbar)}, dots: single seeds)" if several
            else "Bars: one seed per model, so there is no seed spread to judge small differences against"]
    if protocol_text:
        note.append(f"Protocol: {protocol_text}")
    _footnote(fig, ". ".join(note))
    return fig


# ---------------------------------------------------------------------------------------------------------
# tables: CSV and markdown copies


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flat_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Two-level column names ("sampled", "NDCG@10") → "sampled NDCG@10"."""
    if not isinstance(frame.columns, pd.MultiIndex):
        return frame
    out = frame.copy()
    out.columns = [" ".join(str(p) for p in parts if str(p)) for parts in frame.columns]
    return out


def markdown_table(frame: pd.DataFrame, digits: int = 4, index: bool = True) -> str:
    """``frame`` as a GitHub-flavoured markdown table (floats with ``digits`` decimals; no extra packages)."""
    frame = _flat_columns(frame)
    df = frame.reset_index() if index and not isinstance(frame.index, pd.RangeIndex) else frame
    header = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def save_table(frame: pd.DataFrame, out_dir: str | Path, name: str, note: str | None = None,
               digits: int = 4) -> list[Path]:
    """Write ``out_dir/name.csv`` (full precision) and ``out_dir/name.md`` (the table, then ``note``,
    e.g. the evaluation protocol); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{name}.csv", out / f"{name}.md"
    frame = _flat_columns(frame)
    index = not isinstance(frame.index, pd.RangeIndex)
    frame.to_csv(csv, index=index)
    text = markdown_table(frame, digits, index) + "\n"
    if note:
        text += "\n" + note.strip() + "\n"
    md.write_text(text)
    return [csv, md]
