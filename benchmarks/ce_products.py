"""GFLOP/s of the catalogue cross-entropy's three matrix products on this CPU, fp32 and bf16, per chunk size.

The fused CE (``seqrec_lib.models.losses.item_cross_entropy``) forms, per chunk of ``c`` rows, the logits
``h [c, d] @ W_t [d, V]``, the state gradient ``g [c, V] @ W [V, d]`` and the table gradient ``g.T @ h`` (added into
[V, d]). Which kernels run these depends on the BLAS path (``seqrec_lib.blas.mkl_path``); compare a plain start with
one under the MKL vendor shim:

    python benchmarks/ce_products.py
    LD_PRELOAD=$(python -m seqrec_lib.blas) python benchmarks/ce_products.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seqrec_lib.records import device_name  # noqa: E402


def seconds(work: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``work`` over ``repeats`` calls, after one warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/ce_products.py", description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="64,128,256,512", help="rows per chunk, comma-separated")
    parser.add_argument("--items", type=int, default=12101, help="V (default: Beauty's catalogue)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    table = torch.randn(args.items, args.d)
    table_t = table.t().contiguous()
    print(f"{device_name(torch.device('cpu'))}; V = {args.items}, d = {args.d}; GFLOP/s, median of {args.repeats}")
    print("| rows c | dtype | logits h @ W_t | state grad g @ W | table grad g.T @ h |\n|---|---|---|---|---|")
    for c in (int(v) for v in args.chunks.split(",")):
        h, g, acc = torch.randn(c, args.d), torch.randn(c, args.items), torch.zeros(args.items, args.d)
        flop = 2 * c * args.items * args.d / 1e9
        for dtype in (torch.float32, torch.bfloat16):
            hc, gc, w, w_t = (x.to(dtype) for x in (h, g, table, table_t))
            grad_w = (lambda: acc.addmm_(gc.T, hc)) if dtype == torch.float32 else (lambda: gc.T @ hc)
            rates = [flop / seconds(work, args.repeats) for work in (lambda: hc @ w_t, lambda: gc @ w, grad_w)]
            print(f"| {c} | {str(dtype).removeprefix('torch.')} | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
