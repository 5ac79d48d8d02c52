"""MOJITO vs SASRec-BCE on ML-100K (real timestamps) under MOJITO's protocol: the paper profile's settings
(windows of 100, BCE with one negative, dropout 0.3) with an optional epoch budget, one or more seeds.

Prints, per model, the sampled protocol (target + 100 uniform negatives outside the history, 5 cohorts,
mean ± population std over cohorts) and full ranking, and writes the table to
``benchmarks/results/ml100k_mojito_<device>.json``.

    SEQREC_DATA_DIR=/path/to/data python benchmarks/ml100k_mojito.py --epochs 30 --seeds 1
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from seqrec_lib.experiments import results_frame, run_many, time_specs
from seqrec_lib.profiles import get_profile
from seqrec_lib.records import provenance, write_json_atomic
from seqrec_lib.train import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the paper profile's 100 epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the profile's seeds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()

    profile = get_profile("paper")
    train = profile.mojito_train if args.epochs is None else dataclasses.replace(profile.mojito_train,
                                                                                 epochs=args.epochs)
    profile = dataclasses.replace(profile, mojito_train=train, device=args.device,
                                  seeds=tuple(args.seeds) if args.seeds else profile.seeds)
    records = run_many(time_specs(profile, "ml-100k"), profile, args.runs)
    frame = results_frame(records)
    cols = ["test_sampled_NDCG@10", "test_sampled_NDCG@10_std", "test_sampled_HR@10", "test_sampled_HR@10_std",
            "test_full_NDCG@10", "test_full_HR@10", "valid_sampled_NDCG@10", "best_epoch", "seconds"]
    print("\nML-100K, test. sampled: target + 100 negatives, 5 cohorts, mean ± population std over cohorts; "
          "full: all items, history masked with -inf")
    print(frame[["label", "seed", *cols]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    device = resolve_device(args.device)
    out = Path("benchmarks/results") / f"ml100k_mojito_{device.type}.json"
    write_json_atomic(out, {"epochs": train.epochs, "rows": frame[["label", "seed", *cols]].to_dict("records"),
                            "protocol": records[0]["protocol"], "provenance": provenance(device)})
    print(f"written {out}")


if __name__ == "__main__":
    main()
