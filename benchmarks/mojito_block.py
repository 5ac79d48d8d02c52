"""One MOJITO attention-mixture block, forward + backward, eager against ``torch.compile``, and where eager's time goes.

The block (``seqrec_lib.models.attention_mixture.MixtureBlock``) at the paper's ML-100K shape by default: B = 128
windows of L = 50, d = 64 (joint width 2d = 128), H = 2 heads, dropout 0.3, attention noise on. ``compile`` is a copy
with the same weights whose dropouts are ``F.dropout`` (Inductor fuses its own random draws into its kernels; the
16-bit draws of ``Int16Dropout`` would be an opaque call), compiled with ``fullgraph=True``. The paths alternate round
by round in one process, so a busy machine slows both alike; the compile time is that of the first call (less when
Inductor's on-disk cache already holds the kernels). The matmul share is that of eager's profiled self CPU
time (``benchmarks.speed.matmul_share``).

    LD_PRELOAD=$(python -m seqrec_lib.blas) python benchmarks/mojito_block.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ce_products import seconds  # noqa: E402
from benchmarks.speed import matmul_share  # noqa: E402
from seqrec_lib.models.attention_mixture import MixtureBlock  # noqa: E402
from seqrec_lib.records import device_name  # noqa: E402


class NNDropout(nn.Module):
    """``F.dropout`` as a module, for the compiled copy."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/mojito_block.py", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per round (median taken)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paths", default="eager,compile", help="eager and/or compile")
    args = parser.parse_args(argv)
    paths = args.paths.split(",")
    if not paths or set(paths) - {"eager", "compile"}:
        parser.error(f"--paths: expected eager and/or compile, got {args.paths!r}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, L, d = args.batch, args.length, args.d
    eager = MixtureBlock(d, args.heads, 0.3, 1e-6).train()
    x, ctx = torch.randn(B, L, 2 * d, requires_grad=True), torch.randn(B, L, d, requires_grad=True)
    m = torch.ones(B, L, dtype=torch.bool)
    sigma = nn.Parameter(torch.full((2,), 0.1))
    grad = torch.randn(B, L, 2 * d)
    blocks = {"eager": eager}
    compile_seconds = float("nan")
    if "compile" in paths:
        twin = copy.deepcopy(eager)
        twin.attn_dropout, twin.dropout = NNDropout(0.3), NNDropout(0.3)
        blocks["compile"] = torch.compile(twin, fullgraph=True)
    step = {name: (lambda b=block: b(x, ctx, m, sigma)[0].backward(grad)) for name, block in blocks.items()}
    if "compile" in paths:
        start = time.perf_counter()
        step["compile"]()                                              # the first call compiles
        compile_seconds = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name in paths:
            times[name].append(seconds(step[name], args.repeats))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step["eager"]()
    share = matmul_share(prof.key_averages())
    print(f"{device_name(torch.device('cpu'))}; B = {B}, L = {L}, 2d = {2 * d}, H = {args.heads}; "
          f"forward + backward, median of {args.repeats} calls per round, {args.rounds} rounds")
    print("| path | ms per round | median ms | time / eager | compile s (first call) |\n|---|---|---|---|---|")
    base = statistics.median(times["eager"]) if "eager" in times else float("nan")
    for name in paths:
        med = statistics.median(times[name])
        print(f"| {name} | {' / '.join(f'{1e3 * t:.1f}' for t in times[name])} | {1e3 * med:.1f} | "
              f"{med / base:.2f}x | {compile_seconds if name == 'compile' else float('nan'):.1f} |")
    print(f"eager: matrix products are {share:.0%} of the profiled self CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
