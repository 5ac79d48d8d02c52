"""What the "ray" executor costs per run on a CPU, against "local": the smoke profile's sweeps (head sweep,
expert sweep at H=2, MOJITO vs SASRec-BCE: 7 runs, the FAME runs depending on their SASRec pretraining),
trained from scratch into fresh folders, and 200 no-op jobs (the executor alone).

1. ``local``, cold then warm (``--repeats`` times): the sweep, one run after the other, in this process;
2. Ray started in this process with ``--ray-cpus`` CPUs (the start is timed on its own);
3. ``ray``, cold: the sweep as Ray tasks (the workers start and import torch and the data first), then warm
   (``--repeats`` times, the workers up), each into a fresh folder.

With ``--ray-cpus 1`` the Ray sweeps run one task at a time, like ``local``, so the difference of the warm
medians divided by the number of runs is Ray's overhead per run; with 2 or more they also run in parallel.
Writes ``benchmarks/results/executor_overhead_cpu<N>.json``.

    OMP_NUM_THREADS=1 python benchmarks/executor_overhead.py --ray-cpus 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch

from seqrec_lib import experiments as ex
from seqrec_lib.executors import Job, LocalExecutor, RayExecutor
from seqrec_lib.profiles import get_profile
from seqrec_lib.records import provenance, write_json_atomic

SMOKE = get_profile("smoke")


def sweep() -> list[ex.RunSpec]:
    return (ex.head_sweep_specs(SMOKE, "synthetic") + ex.expert_sweep_specs(SMOKE, "synthetic", 2)
            + ex.time_specs(SMOKE, "synthetic"))


def timed_sweep(root: Path, executor: str) -> float:
    start = time.perf_counter()
    ex.run_many(sweep(), SMOKE, root, executor=executor)
    return time.perf_counter() - start


def identity(x: int) -> int:
    return x


def timed_noops(executor: LocalExecutor | RayExecutor, n: int) -> float:
    jobs = [Job(i, needs=(i - 1,) if i % 2 else ()) for i in range(n)]   # every other job needs the one before
    start = time.perf_counter()
    executor.execute(identity, jobs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-cpus", type=int, default=1, help="CPUs of the local Ray (1: tasks one at a time)")
    parser.add_argument("--noops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="warm sweeps per executor")
    args = parser.parse_args()

    ex.load_split("synthetic", SMOKE)                        # the data once, outside every timing
    n_runs = len({ex._identity(s) for s in sweep()})
    with tempfile.TemporaryDirectory() as tmp:
        local_cold = timed_sweep(Path(tmp) / "local-cold", "local")
        local = [timed_sweep(Path(tmp) / f"local-{i}", "local") for i in range(args.repeats)]
        start = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        cold = timed_sweep(Path(tmp) / "ray-cold", "ray")
        warm = [timed_sweep(Path(tmp) / f"ray-{i}", "ray") for i in range(args.repeats)]
        local_noops = timed_noops(LocalExecutor(), args.noops)
        ray_noops = timed_noops(RayExecutor(), args.noops)
        ray.shutdown()

    result = {
        "what": "smoke sweeps (7 runs, 2 epochs each, CPU, one torch thread) through local and ray; no-op jobs",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "ray_version": ray.__version__, "ray_cpus": args.ray_cpus, "runs": n_runs,
        "local_sweep_cold_s": round(local_cold, 2),
        "local_sweep_warm_s": [round(t, 2) for t in local],
        "ray_start_s": round(ray_start, 2),
        "ray_sweep_cold_s": round(cold, 2),
        "ray_sweep_warm_s": [round(t, 2) for t in warm],
        "overhead_per_run_cold_s": round((cold - local_cold) / n_runs, 3),
        "overhead_per_run_warm_s": round((statistics.median(warm) - statistics.median(local)) / n_runs, 3),
        "noop_jobs": args.noops,
        "noop_per_job_local_ms": round(1000 * local_noops / args.noops, 3),
        "noop_per_job_ray_ms": round(1000 * ray_noops / args.noops, 3),
        "provenance": provenance(torch.device("cpu")),
    }
    for key, value in result.items():
        if key != "provenance":
            print(f"{key:26s} {value}")
    out = Path(__file__).parent / "results" / f"executor_overhead_cpu{args.ray_cpus}.json"
    write_json_atomic(out, result)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
