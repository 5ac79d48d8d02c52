"""Every figure function on small hand-made frames: a Figure with a title, labelled axes and a legend, the
palette colour of each model the same in every figure, and save_figure writing PNG and PDF."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from seqrec_lib import plots
from seqrec_lib.analysis import CaseStudy

PROTOCOL = "full ranking over all items; history masked with -inf; HR/NDCG@{5,10,20}, MRR; all users"
METRICS = ("NDCG@20", "HR@20")


def _results(seeds: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("beauty", "synthetic"):
        for seed in seeds:
            for heads in (1, 2, 4):
                for label in ("SASRec-CE", "FAME w/o MoE"):
                    rows.append({"label": label, "dataset": dataset, "heads": heads, "experts": 1, "seed": seed,
                                 **{f"test_full_{m}": rng.uniform(0.02, 0.2) for m in METRICS}})
            for experts in (2, 4):
                rows.append({"label": "FAME", "dataset": dataset, "heads": 2, "experts": experts, "seed": seed,
                             **{f"test_full_{m}": rng.uniform(0.02, 0.2) for m in METRICS}})
        rows.append({"label": "MOJITO", "dataset": dataset, "heads": 2, "experts": 0, "seed": 0,
                     **{f"test_full_{m}": rng.uniform(0.02, 0.2) for m in METRICS}})
    return pd.DataFrame(rows)


def _diversity() -> pd.DataFrame:
    rows = []
    for label in ("SASRec-CE", "FAME", "MOJITO"):
        for layer in (1, 2):
            for q in ("attention", "attention_norm", "output"):
                rows.append({"label": label, "layer": layer, "quantity": q, "mean": 0.5, "ci_low": 0.45,
                             "ci_high": 0.55, "n_users": 64, "n_heads": 2})
    return pd.DataFrame(rows)


def _case() -> CaseStudy:
    facets = {i: {"genre": (f"g{i % 3}",), "creator": (f"c{i % 5}",)} for i in range(1, 40)}
    return CaseStudy(user=7, which="test", k=5, history=[1, 2, 3, 4, 5, 6], target=12, gate=np.array([0.3, 0.7]),
                     head_lists=[[10, 11, 13, 14, 15], [12, 16, 17, 18, 19]], head_ranks=[7, 0],
                     combined_list=[16, 12, 10, 11, 13], combined_rank=1, baseline_list=[20, 21, 22, 23, 24],
                     baseline_rank=9, facets=facets)


def _figures() -> dict[str, Figure]:
    frame = _results()
    log = [{"epoch": e, "loss": 5.0 / e, "valid": {"NDCG@20": 0.01 * e, "HR@20": 0.02 * e}} for e in range(1, 6)]
    reference = {d: {m: 0.1 for m in METRICS} for d in ("beauty", "synthetic")}
    paper = pd.DataFrame([{"dataset": "beauty", "label": "FAME", "metric": "NDCG@20", "value": 0.0687}])
    alignment = pd.DataFrame({"list": ["head 1", "head 2", "combined"], "head": [1, 2, 0], "gate": [0.3, 0.7, np.nan],
                              "share": [0.6, 0.2, 0.4], "ci_low": [0.5, 0.1, 0.3], "ci_high": [0.7, 0.3, 0.5],
                              "chance": 0.25, "n_users": 64})
    return {
        "lengths": plots.length_distribution_figure({"beauty": np.arange(5, 300), "synthetic": np.arange(8, 30)},
                                                    max_len=50),
        "learning": plots.learning_curves_figure(log, "FAME", "beauty", protocol=PROTOCOL),
        "heads": plots.head_sweep_figure(frame, protocol_text=PROTOCOL, best_heads={"beauty": 2}),
        "experts": plots.expert_sweep_figure(frame[frame["label"] == "FAME"], reference, heads={"beauty": 2},
                                             protocol_text=PROTOCOL),
        "diversity": plots.head_diversity_figure(_diversity(), "synthetic"),
        "case": plots.case_study_figure(_case(), "synthetic", facet="genre"),
        "alignment": plots.facet_alignment_figure(alignment, "synthetic", "genre"),
        "results": plots.results_figure(frame[frame["heads"] == 2], paper=paper, protocol_text=PROTOCOL),
    }


@pytest.fixture(scope="module")
def figures() -> dict[str, Figure]:
    return _figures()


def _legend_entries(fig: Figure) -> dict[str, object]:
    """Legend label → handle, over the figure legends and every axes' legend."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    out = {}
    for legend in legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            out[text.get_text()] = handle
    return out


def _handle_colour(handle: object) -> str:
    for getter in ("get_color", "get_facecolor"):
        if hasattr(handle, getter):
            value = getattr(handle, getter)()
            if isinstance(value, np.ndarray) and value.ndim == 2:
                value = value[0]
            return to_hex(value)
    raise AssertionError(f"cannot read the colour of {handle!r}")


@pytest.mark.parametrize("name", ["lengths", "learning", "heads", "experts", "diversity", "case", "alignment",
                                  "results"])
def test_figure_has_title_axis_labels_and_legend(figures: dict[str, Figure], name: str) -> None:
    fig = figures[name]
    assert isinstance(fig, Figure)
    assert fig.get_suptitle(), f"{name}: no title"
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert panels
    for ax in panels:
        assert ax.get_xlabel(), f"{name}: a panel without an x label"
        assert ax.get_ylabel(), f"{name}: a panel without a y label"
    assert _legend_entries(fig), f"{name}: no legend"


def test_sweeps_state_dataset_metric_and_protocol(figures: dict[str, Figure]) -> None:
    for name in ("heads", "experts", "results"):
        fig = figures[name]
        titles = " ".join(ax.get_title() for ax in fig.axes)
        assert "Beauty" in titles and "Synthetic" in titles
        assert "NDCG@20" in titles and "HR@20" in titles
        notes = " ".join(t.get_text() for t in fig.texts)
        assert "full ranking" in notes, f"{name}: the protocol is not stated"


def test_sweep_layout_is_metric_rows_by_dataset_columns(figures: dict[str, Figure]) -> None:
    axes = figures["heads"].axes
    assert len(axes) == 4
    assert [ax.get_title().split(": ")[1] for ax in axes] == ["test NDCG@20", "test NDCG@20", "test HR@20",
                                                              "test HR@20"]


def test_expert_sweep_draws_the_red_reference_line(figures: dict[str, Figure]) -> None:
    entries = _legend_entries(figures["experts"])
    line = next(h for label, h in entries.items() if "FAME w/o MoE" in label)
    assert _handle_colour(line) == to_hex("#d62728")


def test_one_colour_per_model_across_figures(figures: dict[str, Figure]) -> None:
    seen: dict[str, set[str]] = {}
    for fig in figures.values():
        for label, handle in _legend_entries(fig).items():
            if label in plots.PALETTE:
                seen.setdefault(label, set()).add(_handle_colour(handle))
    assert {"SASRec-CE", "FAME w/o MoE", "FAME", "MOJITO"} <= set(seen)
    for label, colours in seen.items():
        assert colours == {to_hex(plots.PALETTE[label])}, f"{label} drawn in {colours}"


def test_palette_is_distinct_and_covers_the_models() -> None:
    assert set(plots.PALETTE) == {"SASRec-CE", "SASRec-BCE", "FAME w/o MoE", "FAME", "MOJITO", "MostPop"}
    assert len(set(plots.PALETTE.values())) == len(plots.PALETTE)
    assert plots.colour("sasrec") == plots.PALETTE["SASRec-CE"]
    assert plots.colour("some new model") == plots.colour("some new model")


def test_case_study_highlights_the_ground_truth(figures: dict[str, Figure]) -> None:
    fig = figures["case"]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("gate 0.30" in s for s in labels) and any("gate 0.70" in s for s in labels)
    assert any("ground truth: item 12" in s for s in _legend_entries(fig))
    gold = [p for p in fig.axes[0].patches if to_hex(p.get_edgecolor()) == "#d4a017"]
    assert len(gold) == 3          # the history row ends with it; head 2 and the combined list contain it


def test_empty_panels_say_so() -> None:
    frame = _results()
    fig = plots.head_sweep_figure(frame, datasets=["beauty", "toys"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no runs" in texts


def test_save_figure_writes_png_and_pdf(tmp_path, figures: dict[str, Figure]) -> None:
    paths = plots.save_figure(figures["heads"], tmp_path / "figs", "fig5_heads")
    assert [p.name for p in paths] == ["fig5_heads.png", "fig5_heads.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    first = [p.read_bytes() for p in paths]
    time.sleep(1.1)                                          # a PDF creation date would now differ
    again = plots.save_figure(figures["heads"], tmp_path / "figs", "fig5_heads")
    assert [p.read_bytes() for p in again] == first          # same figure, same bytes: git sees no change


def test_the_same_data_gives_the_same_figure_whatever_numpy_s_random_state(tmp_path) -> None:
    """The jitter of the seed dots comes from numpy's global state: seeded while a figure is built, restored after;
    bootstrap error bars are seeded too."""
    frame = _results(seeds=tuple(range(6)))
    saved = []
    for state in (1, 2):
        np.random.seed(state)
        before = np.random.get_state()[1].copy()
        fig = plots.head_sweep_figure(frame, protocol_text=PROTOCOL, best_heads={"beauty": 2}, errorbar=("ci", 95))
        assert (np.random.get_state()[1] == before).all()      # the caller's random state is left as it was
        saved.append(plots.save_figure(fig, tmp_path / str(state), "fig5_heads")[0].read_bytes())
    assert saved[0] == saved[1]     # the PNG: two builds in one process may still differ by ~1e-13 in the PDF's layout


def test_save_table_writes_csv_and_markdown_with_a_note(tmp_path) -> None:
    frame = pd.DataFrame({"label": ["FAME", "SASRec-CE"], "NDCG@20": [0.123456, np.nan]}).set_index("label")
    frame.columns = pd.MultiIndex.from_tuples([("full", "NDCG@20")])
    csv, md = plots.save_table(frame, tmp_path, "table", note="Protocol: full ranking.")
    assert pd.read_csv(csv).columns.tolist() == ["label", "full NDCG@20"]
    text = md.read_text()
    assert text.splitlines()[:3] == ["| label | full NDCG@20 |", "|---|---|", "| FAME | 0.1235 |"]
    assert "| SASRec-CE |  |" in text and text.rstrip().endswith("Protocol: full ranking.")


def test_case_study_colours_the_emphasised_labels_first() -> None:
    fig = plots.case_study_figure(_case(), "synthetic", facet="genre", emphasis=("g2",))
    entries = list(_legend_entries(fig))
    assert entries[1] == "genre g2 (preferred)"


def _matrices() -> dict[str, list[np.ndarray]]:
    m = np.array([[0.0, 0.3, 0.5], [0.3, 0.0, 0.2], [0.5, 0.2, 0.0]])
    return {"SASRec-CE": [m, m / 2], "FAME": [m * 1.5, m]}


def test_head_distance_heatmaps_one_scale_blank_diagonal() -> None:
    fig = plots.head_distance_figure(_matrices(), "synthetic", quantity="attention_norm")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["SASRec-CE, layer 1", "SASRec-CE, layer 2", "FAME, layer 1",
                                                 "FAME, layer 2"]
    for ax in panels:
        assert ax.get_xlabel() == "head h'" and ax.get_ylabel() == "head h"
        label = ax.get_title().split(",")[0]
        assert to_hex(ax.title.get_color()) == to_hex(plots.PALETTE[label])       # the model's colour
        mesh = ax.collections[0]
        assert mesh.norm.vmin == 0.0 and mesh.norm.vmax == pytest.approx(0.75)    # one scale for all panels
        assert np.ma.getmaskarray(mesh.get_array()).reshape(3, 3).diagonal().all()
    assert sorted(t.get_text() for t in panels[0].texts) == ["0.20", "0.20", "0.30", "0.30", "0.50", "0.50"]
    colourbar = [ax for ax in fig.axes if not ax.get_title()]
    assert len(colourbar) == 1 and "√(2 n_u)" in colourbar[0].get_ylabel()
    assert fig.get_suptitle() and any("averaged over users" in t.get_text() for t in fig.texts)


def test_attention_maps_mask_the_future_and_label_items() -> None:
    n = 6
    a = np.tril(np.ones((2, n, n)))
    a /= a.sum(-1, keepdims=True)
    fig = plots.attention_maps_figure({"MOJITO": a, "FAME": a}, [11, 12, 13, 14, 15, 16], "synthetic", user=3)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["MOJITO, head 1", "MOJITO, head 2", "FAME, head 1", "FAME, head 2"]
    for ax in panels:
        assert ax.get_xlabel() and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["11", "12", "13", "14", "15", "16"]
        mask = np.ma.getmaskarray(ax.collections[0].get_array()).reshape(n, n)
        assert (mask == np.triu(np.ones((n, n), dtype=bool), k=1)).all()
    assert "user 3" in fig.get_suptitle()


def _seeded() -> pd.DataFrame:
    frame = _results()
    return frame[frame["dataset"] == "beauty"]


def test_several_seeds_show_error_bars_and_the_seeds() -> None:
    fig = plots.head_sweep_figure(_seeded(), datasets=["beauty"], protocol_text=PROTOCOL)
    ax = fig.axes[0]
    # each label: the mean line (3 points) + one error bar per point; the seeds as dots (2 labels × 3 H × 2 seeds)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 12
    errorbars = [line for line in ax.lines if np.ptp(np.asarray(line.get_xdata(), float)[
        ~np.isnan(np.asarray(line.get_xdata(), float))]) < 0.5]                    # within one H: a whisker
    assert len(errorbars) == 2 * 3
    assert "±1 std" in " ".join(t.get_text() for t in fig.texts)
    one_seed = plots.head_sweep_figure(_seeded()[lambda f: f["seed"] == 0], datasets=["beauty"])
    assert not [c for c in one_seed.axes[0].collections if len(c.get_offsets())]


def test_expert_sweep_can_add_the_sasrec_line_and_reference_spread() -> None:
    frame = _seeded()
    reference = {"beauty": {m: [0.1, 0.12, 0.11] for m in METRICS}}
    baseline = {"beauty": {m: 0.08 for m in METRICS}}
    fig = plots.expert_sweep_figure(frame[frame["label"] == "FAME"], reference, datasets=["beauty"],
                                    baseline=baseline, protocol_text=PROTOCOL)
    entries = _legend_entries(fig)
    assert _handle_colour(entries["best FAME w/o MoE (at H*)"]) == to_hex(plots.PALETTE["FAME w/o MoE"])
    assert _handle_colour(entries["SASRec-CE (at H*)"]) == to_hex(plots.PALETTE["SASRec-CE"])
    ax = fig.axes[0]
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [pytest.approx(0.11)]
    bands = [p for p in ax.patches if to_hex(p.get_facecolor()) == to_hex(plots.PALETTE["FAME w/o MoE"])]
    assert len(bands) == 1                                          # ±1 std over the reference's seeds


def test_figures_leave_no_pyplot_figures_open() -> None:
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    _figures()
    assert set(plt.get_fignums()) == before


def test_one_seed_figures_say_small_gaps_are_not_evidence() -> None:
    one = _seeded()[lambda f: f["seed"] == 0]
    for fig in (plots.head_sweep_figure(one, datasets=["beauty"]), plots.results_figure(one[(one["heads"] == 2) & (one["experts"] != 4)])):
        assert "no seed spread" in " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    several = plots.head_sweep_figure(_seeded(), datasets=["beauty"])
    assert "no seed spread" not in " ".join(t.get_text() for t in several.texts).replace("\n", " ")


def test_runs_curves_one_column_per_row_label_with_the_best_epoch_starred() -> None:
    def log(peak: int, n: int) -> list[dict]:
        return [{"epoch": e, "loss": 1.0 / e, "valid": {"NDCG@10": 0.5 - abs(e - peak) / 100}} for e in range(1, n + 1)]

    runs = [("MOJITO, seed 1", log(3, 8), "NDCG@10"), ("MOJITO, seed 2", log(5, 9), "NDCG@10"),
            ("MOJITO (w/o long-term), seed 1", log(2, 6), "NDCG@10"), ("SASRec-BCE, seed 1", log(4, 7), "NDCG@10")]
    fig = plots.runs_curves_figure(runs, "ml-100k", ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible if ax.get_title()]
    assert titles == ["MOJITO", "MOJITO (w/o long-term)", "SASRec-BCE"] and len(visible) == 6
    mojito = visible[0]
    stars = [line for line in mojito.get_lines() if line.get_marker() == "*"]
    assert sorted(float(s.get_xdata()[0]) for s in stars) == [3.0, 5.0]
    assert [t.get_text() for t in mojito.get_legend().get_texts()] == ["seed 1", "seed 2"]
    assert to_hex(stars[0].get_color()) == to_hex(plots.colour("MOJITO"))
