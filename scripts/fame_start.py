"""Where a FAME fine-tune starts: validation NDCG@20 of each pretrained SASRec-CE checkpoint of a paper plan, and of
FAME (w/o MoE) built from it before any fine-tuning (docs/fame.md §8: the last block's W_O, FFN and LayerNorms give
way to new, randomly initialised parts, so the start is below the pretraining).

Reads the checkpoints (``best.pt``) under ``outputs/paper/runs/``, which stay out of git: run it where the plan was
trained. Prints a markdown table; trains nothing.

    SEQREC_DATA_DIR=/path/to/data python scripts/fame_start.py --plan beauty-fig5
"""

from __future__ import annotations

import argparse
import sys

import torch

from seqrec_lib.plans import PAPER, PLANS
from seqrec_lib.blas import fast_path_or_reexec
from seqrec_lib.evaluation import evaluate
from seqrec_lib.experiments import load_split, prerequisites, run_dir
from seqrec_lib.models.registry import build_model
from seqrec_lib.profiles import get_profile


def main(argv: list[str] | None = None) -> int:
    fast_path_or_reexec(argv)                               # MKL's Intel path on AMD CPUs (seqrec_lib.blas)
    parser = argparse.ArgumentParser(prog="python scripts/fame_start.py", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="beauty-fig5")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile = get_profile("paper")
    fame = [spec for spec in PLANS[args.plan](profile) if prerequisites(spec)]     # the fine-tuned runs
    print("| dataset | H | N | SASRec-CE checkpoint valid NDCG@20 | FAME at its start valid NDCG@20 |\n|---|---|---|---|---|")
    for spec in fame:
        _, split = load_split(spec.dataset, profile, spec.samples_step, spec.max_len)
        (pretraining,) = prerequisites(spec)
        folder = run_dir(pretraining, profile, PAPER / "runs")
        if not (folder / "best.pt").exists():
            print(f"| {spec.dataset} | {spec.model_config.n_heads} | {spec.model_config.n_experts} | no checkpoint "
                  f"at {folder / 'best.pt'} | |")
            continue
        weights = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
        torch.manual_seed(spec.seed)                       # the new parts are drawn at random: seeded
        sasrec = build_model("sasrec", split, pretraining.model_config)
        sasrec.load_state_dict(weights)
        model = build_model("fame", split, spec.model_config)
        model.load_pretrained(weights)
        before, start = (evaluate(m, split, "valid")["NDCG@20"] for m in (sasrec, model))
        print(f"| {spec.dataset} | {spec.model_config.n_heads} | {spec.model_config.n_experts} | {before:.4f} | "
              f"{start:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
