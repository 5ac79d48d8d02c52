"""Most-popular, SASRec-CE, FAME w/o MoE and FAME (H=2, N=4) on a real dataset with a fixed epoch budget.

SASRec-CE trains for ``2 * epochs``; FAME and FAME w/o MoE pretrain SASRec-CE for ``epochs`` (one shared
run) and fine-tune for ``epochs``, so every model sees the same number of training epochs. Prints a table
(test metrics, full ranking, history masked with -inf; seconds per epoch) beside the FAME paper's Table 2
and writes it, with provenance, to ``benchmarks/results/<dataset>_models_<device>.json``.

    python benchmarks/beauty_models.py --dataset beauty --epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


from seqrec_lib.data import build_splits, load_dataset
from seqrec_lib.models.fame import FameConfig
from seqrec_lib.paper_results import paper_row
from seqrec_lib.records import provenance, write_json_atomic
from seqrec_lib.train import TrainConfig, resolve_device, train_and_evaluate
from seqrec_lib.two_stage import train_fame_two_stage

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset(args.dataset)
    split = build_splits(data, max_len=50)
    # patience above the budget: the epoch budget, not early stopping, ends these runs
    train = TrainConfig(epochs=args.epochs, patience=10_000, seed=args.seed, device=str(device))
    rows = []

    def add(label: str, record: dict, epochs: int) -> None:
        test = record["metrics"]["test"]["full"]
        rows.append({"model": label, "epochs": epochs, "best_epoch": record["best_epoch"],
                     "sec_per_epoch": record["timings"]["train_seconds_per_epoch_median"],
                     "eval_sec": record["timings"]["eval_seconds_per_epoch_median"],
                     **{m: test[m] for m in METRICS}})
        print(f"{label}: done", flush=True)

    _, pop = train_and_evaluate("pop", split, None, train)
    add("MostPop", pop, 0)
    fame = FameConfig(n_heads=args.heads, n_experts=args.experts)
    _, sasrec_long = train_and_evaluate("sasrec", split, fame.sasrec_config(),
                                        dataclasses.replace(train, epochs=2 * args.epochs),
                                        run_dir=args.runs / f"sasrec-{2 * args.epochs}ep-{args.dataset}")
    add("SASRec-CE", sasrec_long, 2 * args.epochs)
    for label, n in (("FAME w/o MoE", 1), ("FAME", args.experts)):
        _, record = train_fame_two_stage(split, dataclasses.replace(fame, n_experts=n), train, args.runs)
        add(label, record, 2 * args.epochs)

    paper_name = {"beauty": "Beauty", "sports": "Sports", "toys": "Toys"}.get(args.dataset)
    for model in ("SASRec", "FAME"):
        if paper_name:
            rows.append({"model": f"paper {model}", **{m: paper_row(model, args.dataset)[m] for m in METRICS}})
    header = f"{'model':14s} {'epochs':>6s} {'s/epoch':>8s} " + " ".join(f"{m:>8s}" for m in METRICS)
    print(f"\n{args.dataset}: test, full ranking over all items, history masked with -inf, all users")
    print(header)
    for r in rows:
        sec = f"{r['sec_per_epoch']:8.1f}" if r.get("sec_per_epoch") else f"{'':8s}"
        print(f"{r['model']:14s} {r.get('epochs', ''):>6} {sec} " + " ".join(f"{r[m]:8.4f}" for m in METRICS))
    out = Path("benchmarks/results") / f"{args.dataset}_models_{device.type}.json"
    write_json_atomic(out, {"dataset": args.dataset, "epochs_budget": 2 * args.epochs, "heads": args.heads,
                            "experts": args.experts, "seed": args.seed, "rows": rows,
                            "provenance": provenance(device), "started": time.strftime("%Y-%m-%d")})
    print(f"written {out}")


if __name__ == "__main__":
    main()
