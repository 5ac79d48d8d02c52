"""Operations per training step of each code path: what a launch-bound GPU step pays for, counted on any device.

One training step (forward, backward, Adam) on a fixed batch of ``--batch`` training sequences, after two warm-up
steps, under ``torch.profiler``; the table has the aten operations the step ran and those that read a value back
to the host (``item``, ``nonzero``, ``unique``: a synchronisation on a GPU; on the CPU the count includes Adam's
step counters, which stay on the CPU, so no synchronisation, on a GPU too). The paths are ``benchmarks/speed.py``'s.

    SEQREC_DATA_DIR=/path/to/data python benchmarks/op_count.py --rows sasrec-ce:beauty --paths eager,padded,exact
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.speed import Path_  # noqa: E402

HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_dim")


def count_step(path: str, model: str, dataset: str, batch_size: int, device: str) -> dict[str, int]:
    """aten operations and host reads of one training step of ``path`` on ``batch_size`` sequences."""
    p = Path_(path, model, dataset, 1, 1, device)
    order = torch.randperm(len(p.split.train), generator=torch.Generator().manual_seed(0))[:batch_size]
    batch = p.split.train.select(order.to(p.device))
    p.model.train()

    def step() -> None:
        loss = p.model.loss(batch)
        p.optimizer.zero_grad()
        loss.backward()
        p.optimizer.step()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    averages = prof.key_averages()
    return {"ops": sum(k.count for k in averages if k.key.startswith("aten::")),
            "host_reads": sum(k.count for k in averages if k.key in HOST_READS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/op_count.py", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="sasrec-ce:beauty", help="model:dataset,... (benchmarks/speed.py's)")
    parser.add_argument("--paths", default="eager,padded,exact")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | dataset | path | aten ops per step | host reads per step |\n|---|---|---|---|---|")
    for row in args.rows.split(","):
        model, dataset = row.split(":")
        for path in args.paths.split(","):
            counts = count_step(path, model, dataset, args.batch, args.device)
            print(f"| {model} | {dataset} | {path} | {counts['ops']} | {counts['host_reads']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
