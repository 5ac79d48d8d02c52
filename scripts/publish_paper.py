"""Publish what the paper runs have finished: tables, learning curves and a status page from the committed records.

Reads every ``outputs/paper/records/*.json`` (``scripts/paper_runs.py`` commits one per finished unit) and writes,
under ``outputs/paper/``:

- ``results/runs.{csv,md}``: one row per record: label, dataset, seed, the settings that vary between the paper
  units (heads, dropout, learning rate, batch, Adam β2), best epoch / epochs run, median seconds per training
  epoch, the validation metric selection used, test metrics under each protocol, commit, device and date;
- ``results/table2_so_far.{csv,md}``: the runs on FAME's Table-2 datasets by label and settings, mean ± std over
  seeds, s/epoch, beside the paper's row of the same model and its ICLRec and FAME rows;
- ``results/mojito_table.{csv,md}``: the MOJITO table (``seqrec_lib.mojito_table``) over the ML-100K records
  there are so far, mean ± std over seeds, and ``results/mojito_paired.{csv,md}``: MOJITO minus each row, seed by
  seed;
- ``results/table2_paired.{csv,md}``: once Table 2's plans have a FAME row, FAME minus SASRec-CE and FAME w/o MoE,
  seed by seed, per dataset;
- ``figures/curves/curves_<dataset>.{png,pdf}``: every run's training loss and validation curve;
- ``results/status.md``: per plan of ``paper_runs.py``, which units are published and which are pending, and
  ``results/plan_units.csv``, the same as a table;
- ``docs/results.md`` and README's headline tables (``seqrec_lib.results_doc``): the results narrative, every number
  in it computed from the records and result tables (``tests/test_results_doc.py`` fails when they are stale).

Nothing is trained; a run that has no record is listed as pending, never filled in.

    SEQREC_DATA_DIR=/path/to/data python scripts/publish_paper.py
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from seqrec_lib import mojito_table as mt  # noqa: E402
from seqrec_lib import paper_results, results_doc  # noqa: E402
from seqrec_lib.experiments import format_summary, results_frame, summary_table, time_specs  # noqa: E402
from seqrec_lib.plans import PAPER, PLANS, ROOT, NotReady, published  # noqa: E402
from seqrec_lib.plots import runs_curves_figure, save_figure, save_table  # noqa: E402
from seqrec_lib.profiles import get_profile  # noqa: E402
from seqrec_lib.results_doc import load_records  # noqa: E402

SETTINGS = {"heads": ("model_config", "n_heads"), "experts": ("model_config", "n_experts"),
            "W_f": ("model_config", "wf_init"), "residual": ("model_config", "attn_residual"),
            "dropout": ("model_config", "hidden_dropout", "dropout"),
            "lr": ("train_config", "lr"), "batch": ("train_config", "batch_size"),
            "beta2": ("model_config", "adam_beta2"), "windows every": ("record", "samples_step")}
SHORT = {"heads": "H", "experts": "N"}        # in a row's settings text


def _setting(record: dict[str, Any], where: str, *fields: str) -> Any:
    """The first of ``fields`` that ``record`` (or its ``where`` part) has; None when it has none."""
    part = record if where == "record" else record.get(where, {})
    return next((part[f] for f in fields if f in part), None)


def _settings_text(record: dict[str, Any]) -> str:
    """The settings that vary between paper units, compactly: "H 2, N 1, W_f random, residual slice, dropout 0.6,
    lr 0.0005, batch 512" (each where the model has it)."""
    parts = [(name, _setting(record, *where)) for name, where in SETTINGS.items()
             if name not in ("beta2", "windows every")]
    return ", ".join(f"{SHORT.get(n, n)} {_number_text(v)}" for n, v in parts if v is not None)


def _number_text(value: Any) -> str:
    """A setting as written in a config: 2, 0.5, 0.0005 (not 2.0000), a name as it is; empty where the model has
    none."""
    return "" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


def runs_table(records: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per record (``frame``: their ``results_frame``): identity, varying settings, budget, selection
    metric, test metrics, provenance."""
    test_columns = [c for c in frame.columns if c.startswith("test_") and c.endswith(("NDCG@10", "HR@10"))]
    rows = []
    for record, (_, row) in zip(records, frame.iterrows()):
        selection = record["train_config"].get("select_metric", "NDCG@20")
        first_protocol = record["protocol"]["evaluation"][0]["key"]
        prov = record.get("provenance", {})
        rows.append({
            "label": row["label"], "dataset": row["dataset"], "seed": row["seed"],
            **{name: _number_text(_setting(record, *where)) for name, where in SETTINGS.items()},
            "best / run": f"{row['best_epoch']} / {row['epochs_run']}",
            "s/epoch": f"{row['seconds_per_epoch']:.1f}",
            "selected on": f"valid {selection} ({first_protocol})",
            "valid": row.get(f"valid_{first_protocol}_{selection}"),
            **{c.removeprefix("test_").replace("_", " "): row[c] for c in test_columns},
            "commit": (prov.get("git_commit") or "")[:7], "device": prov.get("device_name"),
            "date": (prov.get("date") or "")[:10], "record": record["record_file"],
        })
    return pd.DataFrame(rows)


TABLE2_METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
TABLE2_REFERENCE = ("ICLRec", "FAME")   # the paper's strongest baseline and its FAME row, under each dataset


def table2_so_far(records: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    """Our runs on FAME's Table-2 datasets beside the paper's numbers: one row per (dataset, label, settings),
    mean ± std over seeds of the full-ranking test metrics, the seeds, median s/epoch, and for a model Table 2
    also has (``paper_results.TABLE2_LABELS``) the paper's NDCG@10 / HR@10 and ours as a share of them; then the
    paper's ICLRec and FAME rows of each dataset. Empty when no run is on a Table-2 dataset."""
    on_table = [(r, row) for r, (_, row) in zip(records, frame.iterrows()) if row["dataset"] in
                paper_results.PAPER_DATASETS and f"test_full_{TABLE2_METRICS[0]}" in row and
                pd.notna(row[f"test_full_{TABLE2_METRICS[0]}"])]
    if not on_table:
        return pd.DataFrame()
    ours = pd.DataFrame([{**row, "model_label": row["label"], "label": f"{row['label']} ({_settings_text(r)})"}
                         for r, row in on_table])
    summary = summary_table(ours, TABLE2_METRICS, protocol="full")
    text = format_summary(summary, TABLE2_METRICS)
    valid = format_summary(summary_table(ours, ["NDCG@20"], protocol="full", which="valid"), ["NDCG@20"])
    rows = []
    for (dataset, label), cells in text.iterrows():
        group = ours[(ours["dataset"] == dataset) & (ours["label"] == label)]
        model = group["model_label"].iloc[0]
        paper = paper_results.paper_rows_for([model], dataset).get(model)
        share = {f"ours / paper {m}": f"{summary.loc[(dataset, label), m] / paper[m]:.0%}" if paper else ""
                 for m in TABLE2_METRICS[:2]}
        rows.append({"dataset": dataset, "row": label, "valid NDCG@20": valid.loc[(dataset, label), "NDCG@20"],
                     **cells.to_dict(), "seeds": str(int(summary.loc[(dataset, label), "n_seeds"])),
                     "s/epoch": f"{group['seconds_per_epoch'].median():.1f}",
                     **{f"paper {m}": f"{paper[m]:.4f}" if paper else "" for m in TABLE2_METRICS[:2]}, **share})
    for dataset in dict.fromkeys(ours["dataset"]):
        for model in TABLE2_REFERENCE:
            paper = paper_results.paper_row(model, dataset)
            rows.append({"dataset": dataset, "row": f"{model} (FAME paper, Table 2)", "valid NDCG@20": "",
                         **{m: f"{paper[m]:.4f}" for m in TABLE2_METRICS}})
    return pd.DataFrame(rows).astype(object).fillna("").set_index(["dataset", "row"])


def table2_paired(records: list[dict[str, Any]], frame: pd.DataFrame, stems: set[str]) -> pd.DataFrame:
    """FAME minus every other row of the Table-2 plans (SASRec-CE, FAME w/o MoE), paired by training seed, per
    dataset (``mojito_table.paired_comparison``). Only the records named in ``stems`` (the published records of
    the ``*-table2`` plans) count: there each label has one setting, so a seed names one run; elsewhere (the
    search, Fig. 5) a label has many. Empty until a FAME row exists."""
    rows = frame[[Path(r["record_file"]).stem in stems for r in records]]
    if rows.empty or "FAME" not in set(rows["label"]):
        return pd.DataFrame()
    return mt.paired_comparison(rows, reference="FAME", metrics=TABLE2_METRICS, protocols=("full",))


STATUS_FIELDS = ("n_heads", "n_experts", "wf_init", "attn_residual", "hidden_dropout", "lr", "batch_size")


def spec_settings(spec: Any) -> str:
    """The settings that tell a plan's units apart: "n_heads=2, hidden_dropout=0.6, lr=0.0005, batch_size=512"."""
    fields = {**dataclasses.asdict(spec.model_config), **dataclasses.asdict(spec.train_config)}
    return ", ".join(f"{f}={fields[f]}" for f in STATUS_FIELDS if f in fields)


def plan_units(profile_name: str = "paper") -> tuple[list[tuple[str, Any, Path]], dict[str, str]]:
    """(plan, spec, published record path) of every unit of ``paper_runs.py``'s plans, in the order they run, and
    plan → why it is not ready yet (its units follow from validation choices still to be made)."""
    profile = get_profile(profile_name)
    units, waiting = [], {}
    for plan, specs_of in PLANS.items():
        try:
            units += [(plan, spec, published(spec, profile)) for spec in specs_of(profile)]
        except NotReady as why:
            waiting[plan] = str(why)
    return units, waiting


def plan_order(units: list[tuple[str, Any, Path]]) -> dict[str, int]:
    """Run folder name → its first position in ``units``."""
    return {path.stem: i for i, (_, _, path) in reversed(list(enumerate(units)))}


def status_page(units: list[tuple[str, Any, Path]], waiting: dict[str, str] | None = None) -> str:
    """Markdown: per plan, its units in order with published / pending; then the plans not ready and why."""
    lines = ["# Paper runs: what is published, what is pending", "",
             "Units of `scripts/paper_runs.py`, in the order they run; a unit is published when its record is "
             "committed under `outputs/paper/records/`.", ""]
    for plan in dict.fromkeys(plan for plan, _, _ in units):
        entries = [(spec, path, path.exists()) for name, spec, path in units if name == plan]
        lines += [f"## {plan}: {sum(ok for _, _, ok in entries)} of {len(entries)} published", ""]
        for spec, path, ok in entries:
            lines.append(f"- [{'x' if ok else ' '}] {spec.label} on {spec.dataset}, seed {spec.seed}: "
                         f"{spec_settings(spec)} (`{path.stem}`)")
        lines.append("")
    for plan, why in (waiting or {}).items():
        lines += [f"## {plan}: not ready", "", why, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/publish_paper.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PAPER, help="the paper outputs folder (default outputs/paper)")
    args = parser.parse_args(argv)
    records = load_records(args.out / "records")
    units, waiting = plan_units()
    order = plan_order(units)
    records.sort(key=lambda r: order.get(Path(r["record_file"]).stem, len(order)))   # plans' order, then the rest
    results, curves = args.out / "results", args.out / "figures" / "curves"
    if records:
        frame = results_frame(records)
        save_table(runs_table(records, frame).set_index(["label", "dataset", "seed"]), results, "runs",
                   note="Test metrics of the epoch with the best validation metric (full: all items ranked, "
                        "history masked; sampled: 1 target + 100 negatives, mean over 5 cohorts). s/epoch: median "
                        "training seconds per epoch on the device named.")
        for dataset in dict.fromkeys(r["dataset"] for r in records):
            runs = [(f"{r.get('label') or r['model']}, seed {r['seed']}, {_settings_text(r)}", r["epoch_log"],
                     r["train_config"].get("select_metric", "NDCG@20")) for r in records if r["dataset"] == dataset]
            fig = runs_curves_figure(runs, dataset, footnote="Validation protocol as in each run's record (Beauty: "
                                     "full ranking; ML-100K: MOJITO's sampled protocol). Early stopping: patience "
                                     "epochs without a better validation metric.")
            save_figure(fig, curves, f"curves_{dataset}")
            plt.close(fig)
        table2 = table2_so_far(records, frame)
        if len(table2):
            save_table(table2, results, "table2_so_far",
                       note="FAME's Table-2 datasets so far: test metrics under full ranking, history masked, at "
                            "the epoch with the best validation NDCG@20; mean ± std over the seeds run (one seed: "
                            "the value alone); s/epoch: median training seconds per epoch (device in runs.md). "
                            "Paper columns: the same model's row of FAME's Table 2 (its SASRec beside our "
                            "SASRec-CE), then its ICLRec and FAME rows.")
        pairs = table2_paired(records, frame, {path.stem for plan, _, path in units if plan.endswith("-table2")})
        if len(pairs):
            save_table(pairs, results, "table2_paired",
                       note="Table 2's rows: FAME minus each other row, paired by training seed (mean_diff > 0: "
                            "FAME ahead), test metrics under full ranking; t and p of the paired t-test need at "
                            "least 2 seeds.")
        ml = frame[frame["dataset"] == "ml-100k"]
        rows = {s.label: i for i, s in reversed(list(enumerate(time_specs(get_profile("paper"), "ml-100k"))))}
        ml = ml.sort_values("label", key=lambda labels: labels.map(rows), kind="stable")   # as notebook 06 orders
        if len(ml) and all(f"test_{p}_{m}" in ml for p in mt.PROTOCOLS for m in mt.METRICS):
            table = mt.format_mojito_table(mt.mojito_table(ml))
            save_table(table, results, "mojito_table",
                       note="ML-100K, MOJITO's table so far: mean ± std over training seeds (one seed: the mean "
                            "alone); the sampled protocol's spread over its 5 cohorts in its own column.")
            pairs = mt.paired_comparison(ml)
            if len(pairs):
                save_table(pairs, results, "mojito_paired",
                           note="MOJITO minus each row, paired by training seed (mean_diff > 0: MOJITO ahead); "
                                "t and p of the paired t-test need at least 2 seeds.")
    results.mkdir(parents=True, exist_ok=True)
    (results / "status.md").write_text(status_page(units, waiting) + "\n")
    results_doc.plan_frame(units).to_csv(results / "plan_units.csv", index=False)
    written = ""
    if args.out.resolve() == PAPER.resolve():        # the repository's docs follow the committed records only
        for path, text in results_doc.generated(args.out, ROOT).items():
            path.write_text(text)
        written = ", docs/results.md, README.md"
    print(f"{len(records)} records → {results}/runs.md, {curves}/, {results}/status.md{written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
