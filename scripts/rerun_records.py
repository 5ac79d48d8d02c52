"""Re-train published paper runs with today's code in a separate folder and compare their test metrics with the
published records: what a change to the training path (a new dropout draw, a fused optimiser, a chunk size) does to
the results, measured against the spread of the published seeds.

    SEQREC_DATA_DIR=/path/to/data python scripts/rerun_records.py --plan ml100k-mojito --label MOJITO \\
        --seeds 1 2 3 --threads 1 --out benchmarks/results/rerun_ml100k_mojito.json

``--runs`` picks single records where a plan has several runs per seed (a sweep's H or N), e.g. Toys' SASRec-CE at
H = 2 of ``toys-fig5``::

    SEQREC_DATA_DIR=/path/to/data python scripts/rerun_records.py --plan toys-fig5 --label SASRec-CE --seeds 1 \\
        --runs sasrec-55d0776c48fd --out benchmarks/results/rerun_toys_sasrec_h2.json

Runs go to ``outputs/rerun/runs`` (checkpoints, ignored by git; a finished one is read back, an interrupted one
continues); the comparison is printed and written to ``--out`` with the code's provenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from seqrec_lib.plans import PLANS, ROOT, published
from seqrec_lib.blas import fast_path_or_reexec
from seqrec_lib.experiments import run
from seqrec_lib.profiles import get_profile
from seqrec_lib.records import provenance, write_json_atomic

RERUNS = ROOT / "outputs" / "rerun" / "runs"
METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")


def test_metrics(record: dict) -> dict[str, float]:
    """The record's test metrics: full ranking, and MOJITO's sampled protocol where the record has it."""
    test = record["metrics"]["test"]
    out = {f"full {m}": test["full"][m] for m in METRICS}
    if "sampled" in test:
        out |= {f"sampled {m}": test["sampled"][m] for m in METRICS}
    return out


def curve_difference(before: dict, after: dict) -> float:
    """The largest |difference| of the selection metric (``train_config.select_metric``) on validation over the epochs
    both runs logged."""
    metric = before["train_config"]["select_metric"]
    return max((abs(a["valid"][metric] - b["valid"][metric]) for a, b in zip(before["epoch_log"], after["epoch_log"])),
               default=float("nan"))


def main(argv: list[str] | None = None) -> int:
    fast_path_or_reexec(argv)                               # MKL's Intel path on AMD CPUs (seqrec_lib.blas)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, choices=sorted(PLANS))
    parser.add_argument("--label", required=True, help="the runs' label in the plan, e.g. MOJITO or SASRec-CE")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--runs", nargs="+", help="only these of the chosen runs, by record name (e.g. "
                                                  "sasrec-55d0776c48fd), where a plan has several per seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="where to write the comparison (JSON)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    profile = get_profile("paper")
    specs = [s for s in PLANS[args.plan](profile) if s.label == args.label]
    if not specs:
        labels = sorted({s.label for s in PLANS[args.plan](profile)})
        parser.error(f"plan {args.plan} has no runs labelled {args.label!r}; its labels: {', '.join(labels)}")
    chosen = [s for s in specs if s.seed in args.seeds]
    missing = sorted(set(args.seeds) - {s.seed for s in chosen})
    if missing:
        parser.error(f"plan {args.plan} has no {args.label} run with seed(s) {missing}")
    if args.runs:
        names = {published(s, profile).stem: s for s in chosen}
        unknown = sorted(set(args.runs) - set(names))
        if unknown:
            parser.error(f"--runs: {unknown} are not {args.label} runs of {args.plan} with seed(s) {args.seeds}; "
                         f"those are {', '.join(sorted(names))}")
        chosen = [names[name] for name in args.runs]
    rows = []
    for spec in chosen:
        path = published(spec, profile)
        if not path.exists():
            parser.error(f"{args.label} seed {spec.seed} has no published record ({path})")
        before = json.loads(path.read_text())
        after = run(spec, profile, RERUNS)
        rows.append({"seed": spec.seed, "published": test_metrics(before),
                     "rerun": test_metrics(after), "published_commit": before["provenance"].get("git_commit"),
                     "rerun_commit": after["provenance"].get("git_commit"),
                     "best_epoch": {"published": before["best_epoch"], "rerun": after["best_epoch"]},
                     "valid_curve_max_difference": curve_difference(before, after)})
        print(f"seed {rows[-1]['seed']}: " + ", ".join(
            f"{k} {rows[-1]['published'][k]:.4f} → {v:.4f}" for k, v in rows[-1]["rerun"].items())
            + f"; best epoch {before['best_epoch']} → {after['best_epoch']}, validation curve within "
            f"{rows[-1]['valid_curve_max_difference']:.1e}", flush=True)
    summary = {}
    for key in rows[0]["rerun"]:
        published_values = [r["published"][key] for r in rows]
        rerun_values = [r["rerun"][key] for r in rows]
        summary[key] = {"published_mean": statistics.fmean(published_values),
                        "rerun_mean": statistics.fmean(rerun_values),
                        "published_std": statistics.pstdev(published_values),
                        "mean_difference": statistics.fmean(b - a for a, b in zip(published_values, rerun_values))}
    print("\nmean over seeds (published → rerun, published std):")
    for key, s in summary.items():
        print(f"  {key}: {s['published_mean']:.4f} → {s['rerun_mean']:.4f} "
              f"(difference {s['mean_difference']:+.1e}, published std {s['published_std']:.4f})")
    if args.out:
        write_json_atomic(args.out, {"plan": args.plan, "label": args.label, "runs": rows, "summary": summary,
                                     "provenance": provenance(torch.device("cpu"))})
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
