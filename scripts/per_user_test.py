"""Per-user paired test of Table 2's rows: FAME minus SASRec-CE and FAME w/o MoE, user by user on the test set.

For every published unit of a ``*-table2`` plan, loads its best-validation weights (``best.pt`` under
``outputs/paper/runs/``, which stays out of git: run it where the plan was trained), ranks every test user's
target over the full catalogue exactly as the run's own test metrics did, and compares FAME with each other row
user by user (``seqrec_lib.paired_users``: runs paired by training seed, averaged per user over seeds). Writes
``outputs/paper/results/table2_per_user_<dataset>.{csv,md}`` with commit, device and date; trains nothing.

    SEQREC_DATA_DIR=/path/to/data python scripts/per_user_test.py --plan beauty-table2
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from seqrec_lib.plans import PAPER, PLANS, published
from seqrec_lib.blas import fast_path_or_reexec
from seqrec_lib.evaluation import user_ranks
from seqrec_lib.experiments import load_trained, run_dir
from seqrec_lib.metrics import ranking_metrics
from seqrec_lib.paired_users import paired_users
from seqrec_lib.plots import save_table
from seqrec_lib.profiles import get_profile
from seqrec_lib.records import provenance


def main(argv: list[str] | None = None) -> int:
    fast_path_or_reexec(argv)                               # MKL's Intel path on AMD CPUs (seqrec_lib.blas)
    parser = argparse.ArgumentParser(prog="python scripts/per_user_test.py", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(p for p in PLANS if p.endswith("-table2")), required=True)
    parser.add_argument("--reference", default="FAME", help="the row every other row is compared with")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile = get_profile("paper")
    ranks: dict[str, dict[int, torch.Tensor]] = {}
    runs, dataset = [], None
    for spec in PLANS[args.plan](profile):
        path = published(spec, profile)
        if not path.exists():
            print(f"skipped (not published yet): {spec.label}, seed {spec.seed} ({path.name})", flush=True)
            continue
        record = json.loads(path.read_text())
        record["run_dir"] = str(run_dir(spec, profile, PAPER / "runs"))     # this machine's folder
        model, _, split = load_trained(record, profile)                       # FileNotFoundError names best.pt
        (protocol,) = [p for p in spec.protocols if p.mode == "full"]         # the run's own full ranking
        started = time.perf_counter()
        ranks.setdefault(spec.label, {})[spec.seed] = user_ranks(model, split, "test", protocol)
        dataset, runs = spec.dataset, runs + [path.stem]
        ours = ranking_metrics(ranks[spec.label][spec.seed], protocol.ks)["NDCG@10"]
        recorded = record["metrics"]["test"]["full"]["NDCG@10"]
        print(f"{spec.label}, seed {spec.seed}: {len(ranks[spec.label][spec.seed])} test users ranked in "
              f"{time.perf_counter() - started:.1f} s; NDCG@10 {ours:.6f} (record: {recorded:.6f})", flush=True)
        if abs(ours - recorded) > 1e-4:
            raise RuntimeError(f"{path.name}: the weights in {record['run_dir']} give test NDCG@10 {ours:.6f}, its "
                               f"record {recorded:.6f}: not the run's best checkpoint")
    if dataset is None or args.reference not in ranks or len(ranks) < 2:
        print(f"{args.plan}: needs {args.reference!r} and at least one other published row; have {sorted(ranks)}",
              file=sys.stderr)
        return 2
    table = paired_users(ranks, args.reference)
    origin = provenance(torch.device("cpu"))
    note = (f"{args.reference} minus each row, user by user on the {dataset} test set (full ranking, history "
            f"masked), per-user metrics averaged over the training seeds both rows have; mean_diff > 0: "
            f"{args.reference} ahead; 95% percentile bootstrap over users (2000 resamples, seed 0); paired t-test "
            f"over users; ahead / behind / tied: users. Runs: {', '.join(runs)}. `python scripts/per_user_test.py "
            f"--plan {args.plan}`, commit {origin['git_commit']}, {origin['device_name']}, {origin['date']}.")
    print(table.to_string(index=False))
    for path in save_table(table.set_index(["label", "metric"]), PAPER / "results", f"table2_per_user_{dataset}",
                           note=note):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
