"""``docs/results.md`` and README's headline tables, generated from the committed paper records and result tables.

Every table and every number in a sentence comes from the records (``outputs/paper/records/*.json``), the plan
membership that ``scripts/publish_paper.py`` writes (``outputs/paper/results/plan_units.csv``) and the result
tables the notebooks commit (``outputs/paper/results/*.csv``); differences, ranges and percentages are taken from
unrounded values. ``render(records, units, results)`` returns the page; ``readme_block(...)`` the README's part
between ``<!-- results:begin -->`` and ``<!-- results:end -->``. Nothing is trained or evaluated here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import mojito_table as mt
from . import paper_results
from .experiments import results_frame
from .plots import markdown_table

TABLE2_DATASETS = ("beauty", "toys", "sports")
METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
FAME_ROWS = ("SASRec-CE", "FAME w/o MoE", "FAME")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NAMES = {"beauty": "Beauty", "toys": "Toys", "sports": "Sports", "ml-100k": "ML-100K"}


def plan_frame(units: Sequence[tuple[str, Any, Path]]) -> pd.DataFrame:
    """Plan membership of every unit: plan, label, dataset, seed, record (file stem), published."""
    return pd.DataFrame([{"plan": plan, "label": spec.label, "dataset": spec.dataset, "seed": spec.seed,
                          "record": path.stem, "published": path.exists()} for plan, spec, path in units])


def _plan_runs(frame: pd.DataFrame, units: pd.DataFrame, plan: str) -> pd.DataFrame:
    """The published runs of ``plan`` (rows of ``results_frame``), in the plan's order."""
    stems = list(dict.fromkeys(units.loc[units["plan"] == plan, "record"]))
    return frame.set_index("record").reindex([s for s in stems if s in set(frame["record"])]).reset_index()


def _pct(value: float, base: float) -> str:
    return f"{100 * value / base:+.1f} %"


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _range(values: Sequence[float], digits: int = 4) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.4f}" if len(values) < 2 else f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


# ---------------------------------------------------------------- FAME's Table 2


def table2_rows(frame: pd.DataFrame, units: pd.DataFrame, dataset: str) -> dict[str, pd.DataFrame]:
    """Our runs of Table 2 on ``dataset``: label → its seeds' rows (FAME's three rows from the ``-table2`` plan,
    then every baseline run on the dataset)."""
    rows = _plan_runs(frame, units, f"{dataset}-table2")
    out = {label: rows[rows["label"] == label] for label in FAME_ROWS if (rows["label"] == label).any()}
    others = frame[(frame["dataset"] == dataset) & frame["label"].isin(set(paper_results.TABLE2_LABELS) -
                                                                         set(FAME_ROWS))]
    for label, group in others.groupby("label", sort=False):
        out[label] = group.drop_duplicates("seed")
    return out


def table2_markdown(rows: Mapping[str, pd.DataFrame], dataset: str) -> str:
    """Our mean ± std over seeds per metric beside the paper's cell and ours / paper, then the paper's
    strongest baseline (ICLRec)."""
    lines = []
    for label, group in rows.items():
        paper = paper_results.paper_rows_for([label], dataset).get(label)
        cells = {}
        for m in METRICS:
            ours = group[f"test_full_{m}"].astype(float)
            cells[m] = _mean_std(ours) + (f" / {paper[m]:.4f} ({ours.mean() / paper[m]:.2f}x)" if paper else "")
        lines.append({"model": label + ("" if label != "SASRec-CE" else " (paper: SASRec)"),
                      "seeds": len(group), **cells})
    for model in ("ICLRec", "FAME"):
        paper = paper_results.paper_row(model, dataset)
        if model not in {paper_results.TABLE2_LABELS.get(label) for label in rows}:
            lines.append({"model": f"{model} (paper only)", "seeds": "", **{m: f"— / {paper[m]:.4f}" for m in METRICS}})
    return markdown_table(pd.DataFrame(lines), index=False)


def _ordering_sentence(rows: Mapping[str, pd.DataFrame], dataset: str, metric: str = "NDCG@10") -> str:
    """Which of our rows the common protocol moves most against the paper's cell, and whether the paper's order
    of those models holds (Kendall's τ between the two orders)."""
    ratios = {}
    for label, group in rows.items():
        paper = paper_results.paper_rows_for([label], dataset).get(label)
        if paper:
            ratios[label] = (group[f"test_full_{metric}"].astype(float).mean(), paper[metric])
    if len(ratios) < 2:
        return f"Only {len(ratios)} of our rows has a cell in the paper's table here"
    moved = sorted(ratios, key=lambda k: ratios[k][0] / ratios[k][1], reverse=True)
    theirs = sorted(ratios, key=lambda k: ratios[k][1], reverse=True)
    ours = sorted(ratios, key=lambda k: ratios[k][0], reverse=True)
    tau = stats.kendalltau([ratios[k][0] for k in ratios], [ratios[k][1] for k in ratios]).statistic
    return (f"Ours ÷ paper ({metric}) runs from {ratios[moved[0]][0] / ratios[moved[0]][1]:.2f}x ({moved[0]}) to "
            f"{ratios[moved[-1]][0] / ratios[moved[-1]][1]:.2f}x ({moved[-1]}); the paper orders these models "
            f"{' > '.join(theirs)}, ours {' > '.join(ours)} (Kendall's τ {tau:+.2f})")


def _paired_sentence(pairs: pd.DataFrame, per_user: pd.DataFrame | None, dataset: str, other: str,
                     base: float) -> str:
    seed = pairs.loc[(dataset, other, "full", "NDCG@10")]
    text = (f"FAME − {other}: test NDCG@10 {seed['mean_diff']:+.5f} ({_pct(seed['mean_diff'], base)}), ahead on "
            f"{int(seed['ahead'])} of {int(seed['pairs'])} seeds, paired t-test over seeds p = {_p(seed['p'])}")
    if per_user is not None and ((per_user["label"] == other) & (per_user["metric"] == "NDCG@10")).any():
        user = per_user[(per_user["label"] == other) & (per_user["metric"] == "NDCG@10")].iloc[0]
        text += (f"; user by user ({user['users']:,} test users, seeds {user['seeds']}) "
                 f"{user['mean_diff']:+.5f} [{user['ci_low']:.5f}, {user['ci_high']:.5f}], p = {_p(user['p'])}")
    return text


def table2_section(frame: pd.DataFrame, units: pd.DataFrame, results: Path) -> list[str]:
    out = ["## FAME's Table 2: does FAME beat a strong SASRec-CE?", "",
           "Test metrics under full ranking (history masked) at the epoch with the best validation NDCG@20; mean ± "
           "std over training seeds; each cell: ours / the paper's cell (ours ÷ paper). FAME's rows run at H* and "
           "N* chosen on Beauty's validation (Figs. 5-6 below). Seed-level tests treat each training seed as one "
           "sample; user-level tests treat the trained models as fixed and the test users as the sample, so they "
           "say nothing about another training run.", ""]
    pairs = mt.paired_comparison(frame[frame["record"].isin(units.loc[units["plan"].str.endswith("-table2"),
                                                                       "record"])],
                                 reference="FAME", metrics=METRICS, protocols=("full",))
    gains = {}
    for dataset in TABLE2_DATASETS:
        rows = table2_rows(frame, units, dataset)
        if not {"SASRec-CE", "FAME"} <= set(rows):
            continue
        out += [f"### {NAMES[dataset]}", "", table2_markdown(rows, dataset), ""]
        per_user_file = results / f"table2_per_user_{dataset}.csv"
        per_user = pd.read_csv(per_user_file) if per_user_file.exists() else None
        sasrec, fame = (rows[k]["test_full_NDCG@10"].astype(float).mean() for k in ("SASRec-CE", "FAME"))
        gains[dataset] = (fame - sasrec, sasrec)
        sentences = [_paired_sentence(pairs, per_user, dataset, other, rows[other]["test_full_NDCG@10"].mean())
                     for other in ("SASRec-CE", "FAME w/o MoE") if other in rows]
        paper = {m: paper_results.paper_row(m, dataset)["NDCG@10"] for m in ("SASRec", "ICLRec", "FAME")}
        sentences.append(_ordering_sentence(rows, dataset))
        sentences.append(f"Our SASRec-CE is {sasrec / paper['SASRec']:.2f}x the paper's SASRec row and "
                         f"{sasrec / paper['ICLRec']:.0%} of its strongest baseline (ICLRec); our FAME is "
                         f"{fame / paper['FAME']:.1%} of the paper's FAME row (NDCG@10)")
        out += [f"- {s}." for s in sentences] + [""]
    if gains:
        absolute = [g for g, _ in gains.values()]
        relative = [100 * g / base for g, base in gains.values()]
        ahead = sum(g[0] > 0 for g in gains.values())
        paper_gain = [paper_results.paper_row("FAME", d)["NDCG@10"] / paper_results.paper_row("SASRec", d)["NDCG@10"]
                      - 1 for d in gains]
        heads = _h_star(_plan_runs(frame, units, "beauty-fig5"))
        out += [f"**Reading.** FAME's mean test NDCG@10 is above our SASRec-CE's on {ahead} of {len(gains)} datasets, "
                f"by {min(absolute):+.4f} to {max(absolute):+.4f} ({min(relative):+.1f} % to {max(relative):+.1f} %), "
                f"where the paper's FAME row is {100 * min(paper_gain):.0f}-{100 * max(paper_gain):.0f} % above its "
                "SASRec row: the rest of the paper's margin is its weaker SASRec."
                + (f" Validation chose H* = {heads} on Beauty (Fig. 5), which every dataset's rows use"
                   + ("; with one head there is nothing for FAME's gate to choose between, so what these rows add is "
                      "a fine-tuned last block with a mixture-of-experts query." if heads == 1 else ".")
                   if heads else "")
                + " Per-user tables: `outputs/paper/results/table2_per_user_<dataset>.md`; every run: "
                "`outputs/paper/results/runs.md`.", ""]
    return out


# ---------------------------------------------------------------- Figs. 5 and 6


def _sweep_table(runs: pd.DataFrame, key: str) -> str:
    table = pd.DataFrame({key: runs[key].astype("Int64"), "model": runs["label"],
                          "best / run": [f"{b} / {r}" for b, r in zip(runs["best_epoch"], runs["epochs_run"])],
                          "valid NDCG@20": runs["valid_full_NDCG@20"],
                          **{f"test {m}": runs[f"test_full_{m}"] for m in METRICS}})
    return markdown_table(table.sort_values([key, "model"]), index=False)


def _h_star(fig5: pd.DataFrame) -> int | None:
    """H*: the H of the head sweep's FAME w/o MoE with the best validation NDCG@20 (None before it has run)."""
    no_moe = fig5[fig5["label"] == "FAME w/o MoE"]
    return int(no_moe.loc[no_moe["valid_full_NDCG@20"].astype(float).idxmax(), "heads"]) if len(no_moe) else None


def fig5_section(frame: pd.DataFrame, units: pd.DataFrame) -> list[str]:
    out = ["## Fig. 5: more heads (H sweep, seed 1)", "",
           "SASRec-CE(H) and FAME w/o MoE(H) fine-tuned from it; H* is FAME w/o MoE's best validation NDCG@20. "
           "Figure: `outputs/paper/figures/fig5_head_sweep.png` (notebook `02_head_sweep`).", ""]
    for dataset in TABLE2_DATASETS:
        runs = _plan_runs(frame, units, f"{dataset}-fig5")
        sasrec, fame = (runs[runs["label"] == k].set_index("heads") for k in ("SASRec-CE", "FAME w/o MoE"))
        if sasrec.empty or fame.empty:
            continue
        best = _h_star(runs)
        common = sorted(set(sasrec.index) & set(fame.index))
        above = [int(h) for h in common if fame.loc[h, "valid_full_NDCG@20"] > sasrec.loc[h, "valid_full_NDCG@20"]]
        below = [int(h) for h in common if int(h) not in above]
        out += [f"### {NAMES[dataset]}: H* = {best}", "", _sweep_table(runs, "heads"), "",
                f"Over H, SASRec-CE's valid NDCG@20 spans {_range(sasrec['valid_full_NDCG@20'])} and its test NDCG@10 "
                f"{_range(sasrec['test_full_NDCG@10'])}; FAME w/o MoE is above it on validation at H = "
                f"{', '.join(map(str, above)) or 'none'}"
                + (f" and not above it at H = {', '.join(map(str, below))}" if below else "") + ".", ""]
    return out


def fig6_section(frame: pd.DataFrame, units: pd.DataFrame) -> list[str]:
    out = ["## Fig. 6: more experts (N sweep at each dataset's H*, seed 1)", "",
           "FAME(H*, N) fine-tuned from the same SASRec-CE(H*) checkpoint. Figure: "
           "`outputs/paper/figures/fig6_expert_sweep.png` (notebook `03_expert_sweep`).", ""]
    for dataset in TABLE2_DATASETS:
        runs = _plan_runs(frame, units, f"{dataset}-fig6")
        planned = int((units["plan"] == f"{dataset}-fig6").sum())
        if runs.empty:
            continue
        heads = int(runs["heads"].iloc[0])
        fig5 = _plan_runs(frame, units, f"{dataset}-fig5")
        fig5 = fig5[fig5["heads"] == heads]
        pre = fig5[fig5["label"] == "SASRec-CE"]
        no_moe = fig5[fig5["label"] == "FAME w/o MoE"]
        best = runs.loc[runs["valid_full_NDCG@20"].astype(float).idxmax()]
        text = (f"{len(runs)} of {planned} runs. Valid NDCG@20 over N: {_range(runs['valid_full_NDCG@20'])}"
                + (f" (FAME w/o MoE: {no_moe['valid_full_NDCG@20'].iloc[0]:.4f})" if len(no_moe) else "")
                + f"; validation picks N* = {int(best['experts'])}.")
        if len(pre):
            base = float(pre["test_full_NDCG@20"].iloc[0])
            gain = runs["test_full_NDCG@20"].astype(float) - base
            text += (f" Every N is {gain.min():+.4f} to {gain.max():+.4f} test NDCG@20 from the SASRec-CE(H = {heads}) "
                     f"it starts from ({100 * gain.min() / base:+.1f} % to {100 * gain.max() / base:+.1f} %)"
                     + (f"; FAME w/o MoE alone: {float(no_moe['test_full_NDCG@20'].iloc[0]) - base:+.4f}."
                        if len(no_moe) else "."))
        out += [f"### {NAMES[dataset]}: H* = {heads}", "", _sweep_table(runs, "experts"), "", text, ""]
    return out


# ---------------------------------------------------------------- case study, head diversity, MOJITO


def _csv_table(path: Path, columns: Sequence[str] | None = None) -> str:
    table = pd.read_csv(path)
    return markdown_table(table[list(columns)] if columns else table, digits=3, index=False)


def case_study_section(results: Path) -> list[str]:
    out = ["## Fig. 7 and the gate: do heads specialise?", "",
           "FAME(H = 2, N = 4) on Beauty and Sports (notebook `05_case_study`): over every test user, how often the "
           "gate trusts the head that ranks the target better, with 95 % bootstrap intervals over users and what a "
           "gate blind to the heads' lists would score; then how often each head's top-10 carries the user's "
           "dominant item attribute.", ""]
    for dataset in ("beauty", "sports"):
        gate, facets = results / f"gate_trust_{dataset}_H2.csv", results / f"facet_alignment_{dataset}_attribute.csv"
        if gate.exists():
            out += [f"### {NAMES[dataset]}", "", _csv_table(gate), ""]
        if facets.exists():
            out += [_csv_table(facets, ["list", "share", "ci_low", "ci_high", "chance", "n_users"]), ""]
        if gate.exists():
            out += [f"![Fig. 7 on {NAMES[dataset]}](../outputs/paper/figures/fig7_case_study_{dataset}_user230.png)", ""]
    return out


def _verdict(rows: pd.DataFrame) -> str:
    """'more' / 'less' when every layer's interval excludes 0 on one side, else 'not clearly more or less'."""
    if (rows["ci_low"] > 0).all():
        return "more"
    if (rows["ci_high"] < 0).all():
        return "less"
    return "not clearly more or less"


def head_diversity_section(results: Path) -> list[str]:
    out = ["## Head diversity on real data", ""]
    table, paired = results / "head_diversity.csv", results / "head_diversity_paired.csv"
    if not table.exists():
        return out + ["Not measured on the real data yet: notebook `04_head_diversity` needs the trained weights of "
                      "its runs (`outputs/paper/weights/`).", ""]
    frame = pd.read_csv(table)
    scale_free = frame[frame["quantity"] == "attention_norm"]
    cells = pd.DataFrame({"comparison": scale_free["comparison"], "dataset": scale_free["dataset"],
                          "model": scale_free["label"], "layer": scale_free["layer"], "seeds": scale_free["n_seeds"],
                          "distance": [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" + ("" if np.isnan(sd) else f" ± {sd:.4f}")
                                       for m, lo, hi, sd in zip(scale_free["mean"], scale_free["ci_low"],
                                                                scale_free["ci_high"], scale_free["seed_std"])]})
    out += ["Scale-free distance between the attention maps of two heads (docs/analysis.md §1; 0: identical "
            "heads, 1: disjoint), per test user, averaged over users: mean over training seeds [95 % bootstrap "
            "interval over users] ± std over seeds (notebook `04_head_diversity`, "
            "`outputs/paper/results/head_diversity.md`).", "", markdown_table(cells, index=False), ""]
    if paired.exists():
        diffs = pd.read_csv(paired)
        lines = [f"{row.comparison} on {NAMES.get(row.dataset, row.dataset)}, layer {row.layer}: "
                 f"{row.mean_diff:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]" for row in diffs.itertuples()]
        out += ["Paired over the same users (seed-averaged):", ""] + [f"- {line}" for line in lines] + [""]
        mojito = diffs[diffs["comparison"].str.startswith("MOJITO")]
        if len(mojito):
            seeds = sorted(set(frame.loc[frame["label"] == "MOJITO", "n_seeds"]))
            dataset = NAMES.get(mojito["dataset"].iloc[0], mojito["dataset"].iloc[0])
            text = (f"**MOJITO's claim** (its attention mixtures make heads less redundant): MOJITO's heads differ "
                    f"{_verdict(mojito)} from each other than SASRec-CE's, layer by layer, on {dataset} "
                    f"({', '.join(map(str, seeds))} training seed(s); the intervals are over users, so they say "
                    "nothing about another training run).")
            noise_file = results / "head_diversity_mojito_noise.csv"
            if noise_file.exists():
                noise = pd.read_csv(noise_file)
                noise = noise[noise["quantity"] == "attention_norm"]
                shift = (noise["noise on"] - noise["noise off"]).abs().max()
                text += (" The noise MOJITO adds to its attention logits at evaluation time is not what makes the "
                         "difference: without it (same weights, first seed) its scale-free distance moves by "
                         f"{shift:.1e} at most." if shift < 1e-3 else
                         " Without the noise MOJITO adds to its attention logits at evaluation time (same weights, "
                         "first seed), its scale-free distance is " + ", ".join(
                             f"{off:.4f} instead of {on:.4f} (layer {layer})" for layer, on, off in
                             zip(noise["layer"], noise["noise on"], noise["noise off"])) + ".")
            out += [text, ""]
    return out


def mojito_section(frame: pd.DataFrame, units: pd.DataFrame, records: Sequence[Mapping[str, Any]],
                   results: Path) -> list[str]:
    ml = _plan_runs(frame, units, "ml100k-mojito")
    if ml.empty:
        return []
    items = sorted({r["data"]["n_items"] for r in records if r["dataset"] == "ml-100k"})
    pairs = mt.paired_comparison(ml)
    out = ["## MOJITO's table on ML-100K", "",
           f"Every row on the same training windows and budget; sampled protocol (target + 100 negatives, 5 cohorts) "
           f"and full ranking over all {', '.join(f'{n:,}' for n in items)} items of the (10, 5)-core, history "
           "masked; mean ± std over training seeds, the cohort spread beside.", "",
           markdown_table(mt.format_mojito_table(mt.mojito_table(ml)).reset_index(level=0, drop=True)), ""]
    lines = []
    for other in ("SASRec-BCE", "SASRec-CE", "MOJITO (w/o time context)"):
        if ("ml-100k", other, "sampled", "NDCG@10") not in pairs.index:
            continue
        s, f = pairs.loc[("ml-100k", other, "sampled", "NDCG@10")], pairs.loc[("ml-100k", other, "full", "NDCG@10")]
        lines.append(f"MOJITO − {other}: sampled NDCG@10 {s['mean_diff']:+.4f} (ahead on {int(s['ahead'])} of "
                     f"{int(s['pairs'])} seeds, p = {_p(s['p'])}), full NDCG@10 {f['mean_diff']:+.4f} (ahead on "
                     f"{int(f['ahead'])} of {int(f['pairs'])}, p = {_p(f['p'])})")
    out += [f"- {line}." for line in lines]
    ties = results / "timestamp_ties.csv"
    if ties.exists():
        tie = pd.read_csv(ties).set_index("dataset").loc["ml-100k"]
        out += ["", f"ML-100K's timestamps are coarse (notebook `00_data`): {tie['consecutive_ties']:.0%} of a "
                f"user's consecutive interactions share one, and {tie['test_ties_valid']:.0%} of test items share "
                "their validation item's; a time-aware model has little to read at the end of a sequence here, so "
                "this table says nothing about MOJITO on data with informative time."]
    return out + ["All pairs: `outputs/paper/results/mojito_paired.md`.", ""]


# ---------------------------------------------------------------- provenance and the page


def provenance_section(records: Sequence[Mapping[str, Any]], reruns: Sequence[Path]) -> list[str]:
    devices = pd.Series(["CPU" if r["provenance"].get("device", "cpu") == "cpu" else r["provenance"].get("device_name")
                         for r in records]).value_counts()
    dates = sorted(r["provenance"]["date"][:10] for r in records if r["provenance"].get("date"))
    dirty = sorted(r["record_file"] for r in records if str(r["provenance"].get("git_commit")).endswith("+dirty"))
    out = ["## Provenance", "",
           f"{len(records)} committed records, trained {dates[0]} to {dates[-1]} on "
           + ", ".join(f"{name} ({n})" for name, n in devices.items()) + ". "
           f"{len(dirty)} were made from a modified tree ({', '.join(f'`{d}`' for d in dirty) or 'none'}; what "
           "changed: docs/protocol.md, \"Records made from a modified tree\").", ""]
    for path in reruns:
        rerun = json.loads(path.read_text())
        worst = max(abs(r["rerun"][k] - r["published"][k]) for r in rerun["runs"] for k in r["rerun"])
        out.append(f"- `{path.name}`: {rerun['label']} ({rerun['plan']}), seeds "
                   f"{', '.join(str(r['seed']) for r in rerun['runs'])} re-trained by the code of "
                   f"{str(rerun['provenance'].get('git_commit'))[:7]}: largest test-metric difference to the "
                   f"published record {worst:.1e}.")
    return out + [""]


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``experiments.results_frame`` of the records with each one's file stem (``record``), which plans name."""
    return results_frame(records).assign(record=[Path(r["record_file"]).stem for r in records])


def render(records: Sequence[Mapping[str, Any]], units: pd.DataFrame, results: Path,
           reruns: Sequence[Path] = ()) -> str:
    """The whole of ``docs/results.md``."""
    frame = records_frame(records)
    head = ["# Results on the real data", "",
            "Generated by `python scripts/publish_paper.py` from the committed records (`outputs/paper/records/`) and "
            "result tables (`outputs/paper/results/`); do not edit by hand. Protocol: docs/protocol.md; every run's "
            "settings, epochs and provenance: `outputs/paper/results/runs.md`; what is still pending: "
            "`outputs/paper/results/status.md`.", ""]
    body = (table2_section(frame, units, results) + fig5_section(frame, units) + fig6_section(frame, units)
            + case_study_section(results) + head_diversity_section(results)
            + mojito_section(frame, units, records, results) + provenance_section(records, reruns))
    return "\n".join(head + body).rstrip() + "\n"


def load_records(folder: Path) -> list[dict[str, Any]]:
    """Every record under ``folder`` (sorted by name), each with ``record_file``; a file that is not a run
    record is an error naming it."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); restore it with git checkout -- {path}") from None
        missing = [k for k in ("model", "dataset", "metrics", "epoch_log") if k not in record]
        if missing:
            raise ValueError(f"{path}: not a run record (no {missing})")
        records.append({**record, "record_file": path.name})
    return records


def generated(paper: Path, root: Path) -> dict[Path, str]:
    """What ``publish_paper.py`` writes from the committed files under ``paper`` (``outputs/paper``): path →
    text of ``docs/results.md`` and of README.md with its headline block regenerated. Reads
    ``results/plan_units.csv``, which publishing writes first."""
    records = load_records(paper / "records")
    units = pd.read_csv(paper / "results" / "plan_units.csv")
    order = {stem: i for i, stem in reversed(list(enumerate(units["record"])))}
    records.sort(key=lambda r: (order.get(Path(r["record_file"]).stem, len(order)), r["record_file"]))
    reruns = sorted((root / "benchmarks" / "results").glob("rerun_*.json"))
    readme = root / "README.md"
    return {root / "docs" / "results.md": render(records, units, paper / "results", reruns),
            readme: replace_block(readme.read_text(), readme_block(records, units))}


def readme_block(records: Sequence[Mapping[str, Any]], units: pd.DataFrame) -> str:
    """README's headline: FAME's Table 2 (NDCG@10 and HR@10 per dataset, ours / paper) and MOJITO's table."""
    frame = records_frame(records)
    lines = []
    for dataset in TABLE2_DATASETS:
        for label, group in table2_rows(frame, units, dataset).items():
            paper = paper_results.paper_rows_for([label], dataset).get(label)
            row = {"dataset": NAMES[dataset], "model": label, "seeds": len(group)}
            for m in ("NDCG@10", "HR@10"):
                ours = group[f"test_full_{m}"].astype(float).mean()
                row[m] = f"{ours:.4f}" + (f" / {paper[m]:.4f}" if paper else "")
            lines.append(row)
    ml = _plan_runs(frame, units, "ml100k-mojito")
    core = ml[ml["label"].isin(["MOJITO", "SASRec-BCE", "SASRec-CE", "TiSASRec"])]
    mojito = markdown_table(mt.format_mojito_table(mt.mojito_table(core), digits=4)
                            .drop(columns=[c for c in ("sampled NDCG@10 (cohorts ±)", "sampled HR@10 (cohorts ±)")])
                            .reset_index(level=0, drop=True)) if len(core) else ""
    return "\n".join([BEGIN, "", "FAME's Table 2, test under full ranking, mean over seeds (ours / the paper's cell; "
                      "the paper's SASRec row beside our SASRec-CE):", "",
                      markdown_table(pd.DataFrame(lines), index=False), "",
                      "MOJITO's comparison on ML-100K (mean ± std over 3 seeds):", "", mojito, "", END])


def replace_block(text: str, block: str) -> str:
    """``text`` with its part between ``BEGIN`` and ``END`` (markers included) replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} ... {END} block for the headline tables")
    return text[:start] + block + text[end + len(END):]
