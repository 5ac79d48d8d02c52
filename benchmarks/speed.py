"""Training and evaluation speed of each model and code path, with ratios over the eager path measured in one run.

Paths:
- ``eager``: the code before the fast path (commit ``EAGER_COMMIT``, extracted from git into a temporary package):
  every padded position computed, full [P, V] logits, dense history masks;
- ``exact``: today's default (position-wise work on the real tokens, fused chunked CE, last-position evaluation);
- ``bf16``: ``exact`` under bf16 autocast; ``compile``: ``exact`` with ``torch.compile`` of the training loss.

The paths of each model run in one fresh process (a clean import of each package), interleaved epoch by epoch for
``--epochs`` epochs with the same seed and batches; ``--together`` puts every row in one process, so ratios between
models (FAME over SASRec-CE) come from one run too. The table has the median seconds per training epoch, steps/s,
the full-ranking evaluation of all test users, peak resident memory (a short separate process per row), and the
speed-up over the eager row of the same model and dataset. The agreement check trains the padded reference (today's
code with ``packed=False``: every position computed, the same dropout draws) and the exact path for ``--epochs``
epochs and compares their test metrics (≤ 1e-4). A profile of a training step and an evaluation of each model's exact
path is kept in the output.

    SEQREC_DATA_DIR=/path/to/data python benchmarks/speed.py --threads 2            # all rows (about an hour)
    SEQREC_DATA_DIR=/path/to/data python benchmarks/speed.py --rows sasrec-ce:beauty --paths eager,exact
    SEQREC_DATA_DIR=/path/to/data python benchmarks/speed.py --rows sasrec-ce:beauty,fame:beauty --paths exact \
        --together
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EAGER_COMMIT = "97dd75d"          # the last commit before the fast path
RESULTS = ROOT / "benchmarks" / "results"

# (model name in the registry, config overrides, training settings, samples_step) per benchmark model
MODELS = {
    "sasrec-ce": ("sasrec", {"n_heads": 2}, {"batch_size": 256}, None),
    "fame": ("fame", {"n_heads": 2, "n_experts": 4}, {"batch_size": 256}, None),
    "sasrec-bce": ("sasrec", {"n_heads": 2, "loss": "bce"}, {"batch_size": 256}, None),
    "mojito": ("mojito", {"dropout": 0.3}, {"batch_size": 128}, 10),   # the paper profile's ML-100K budget
}
DEFAULT_ROWS = ("sasrec-ce:beauty", "fame:beauty", "sasrec-bce:beauty", "mojito:ml-100k", "sasrec-ce:sports")
PATHS = ("eager", "exact", "bf16", "compile")


def eager_package() -> Path:
    """Extract ``seqrec_lib`` at ``EAGER_COMMIT`` as the package ``seqrec_lib_eager``; returns its parent dir."""
    parent = Path(tempfile.gettempdir()) / f"seqrec_eager_{EAGER_COMMIT}"
    if not (parent / "seqrec_lib_eager" / "__init__.py").exists():
        archive = subprocess.run(["git", "archive", EAGER_COMMIT, "seqrec_lib"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(parent / "tmp", filter="data")
        (parent / "tmp" / "seqrec_lib").rename(parent / "seqrec_lib_eager")
    return parent


class Path_:
    """One code path of one (model, dataset): its package, split, model, trainer and optimiser."""

    def __init__(self, path: str, model: str, dataset: str, threads: int, seed: int, device: str = "cpu") -> None:
        import torch

        if path == "eager" and str(eager_package()) not in sys.path:
            sys.path.insert(0, str(eager_package()))
        lib = "seqrec_lib_eager" if path == "eager" else "seqrec_lib"
        mod = lambda name: importlib.import_module(f"{lib}.{name}")   # noqa: E731
        self.evaluation, self.path, self.model_name, self.dataset = mod("evaluation"), path, model, dataset
        name, overrides, train_settings, samples_step = MODELS[model]
        self.split = mod("data.sequences").build_splits(mod("data.loading").load_dataset(dataset), 50,
                                                         samples_step=samples_step).to(device)
        self.device = torch.device(device)
        torch.manual_seed(seed)
        registry, train = mod("models.registry"), mod("train")
        self.model = registry.build_model(name, self.split, registry.get_entry(name).config(**overrides)).to(device)
        if path == "padded":
            self.model.packed = False
        extra = {"precision": "bf16"} if path == "bf16" else {"compile": True} if path == "compile" else {}
        self.trainer = train.Trainer(train.TrainConfig(progress=False, seed=seed, device=device, **train_settings,
                                                       **extra))
        # eager: the Adam of its commit's trainer (lr 1e-3, torch's loop); the others: today's trainer's (fused)
        self.optimizer = (torch.optim.Adam(self.model.parameters(), lr=1e-3) if path == "eager"
                          else self.trainer.build_optimizer(self.model))
        self.steps = -(-len(self.split.train) // train_settings["batch_size"])
        self.rng = self._rng_state()          # this path's own RNG stream: batch order, dropout seeds, negatives
        self.epoch_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.peak_gpu_mb = 0.0                 # on CUDA: the largest allocation peak of this path's epochs/evaluations
        self.test: dict[str, float] = {}

    def epoch(self) -> None:
        """One training epoch on this path's own RNG stream: paths interleaved in one process draw the same batch
        orders and dropout seeds as each would alone (one shared global stream would give each path other ones)."""
        self._set_rng_state(self.rng)
        self.epoch_seconds.append(self._timed(lambda: self.trainer._train_epoch(
            self.model, self.split, self.optimizer, len(self.epoch_seconds))))
        self.rng = self._rng_state()

    def evaluate(self) -> None:
        metrics = {}
        self.eval_seconds.append(self._timed(lambda: metrics.update(
            self.evaluation.evaluate(self.model, self.split, "test", self.evaluation.EvalProtocol()))))
        self.test = {k: v for k, v in metrics.items() if k != "n_users"}

    def _timed(self, work: Callable[[], object]) -> float:
        """Seconds of ``work`` on this path's device (CUDA: synchronised at both ends, allocation peak kept)."""
        import torch

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        work()
        if cuda:
            torch.cuda.synchronize(self.device)
            self.peak_gpu_mb = max(self.peak_gpu_mb, torch.cuda.max_memory_allocated(self.device) / 2**20)
        return time.perf_counter() - start

    def _rng_state(self) -> tuple:
        import torch

        return (torch.get_rng_state(),
                torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)

    def _set_rng_state(self, state: tuple) -> None:
        import torch

        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)


def measure(group: dict) -> list[dict]:
    """Train every run of ``group`` ([model, dataset, path] each) for its epochs, interleaved epoch by epoch so a
    busy machine slows all runs alike; then evaluate each twice (interleaved). Peak memory comes from a short
    separate process per run (``peak_memory``)."""
    import torch

    torch.set_num_threads(group["threads"])
    paths = [Path_(p, m, d, group["threads"], group["seed"], group["device"]) for m, d, p in group["runs"]]
    for _ in range(group["epochs"]):
        for p in paths:
            p.epoch()
    for _ in range(2):
        for p in paths:
            p.evaluate()
    rows = []
    for p in paths:
        times = p.epoch_seconds[1:] if len(p.epoch_seconds) > 2 else p.epoch_seconds   # the first warms up
        median = statistics.median(times)
        rows.append({"model": p.model_name, "dataset": p.dataset, "path": p.path, "epochs": group["epochs"],
                     "group": group["id"], "threads": group["threads"], "epoch_seconds": p.epoch_seconds,
                     "median_epoch_seconds": median,
                     "steps_per_second": p.steps / median, "eval_seconds": min(p.eval_seconds), "test": p.test,
                     "device": group["device"]} | ({"peak_gpu_mb": p.peak_gpu_mb} if group["device"] != "cpu" else {}))
        if p.path == "exact":                                               # every model's exact row
            rows[-1]["profile"], rows[-1]["matmul_share"] = profile_exact(p.model, p.split, p.optimizer, p.evaluation,
                                                                        p.trainer.config.batch_size)
    return rows


def peak_memory(group: dict, row: dict) -> float:
    """Peak resident MB of a fresh process that builds ``row``'s run and runs 5 training steps and one evaluation."""
    code = (f"import sys, dataclasses, resource, torch; sys.path.insert(0, {str(ROOT)!r});"
            f"from benchmarks.speed import Path_; torch.set_num_threads({group['threads']});"
            f"p = Path_({row['path']!r}, {row['model']!r}, {row['dataset']!r}, {group['threads']}, {group['seed']});"
            f"n = 5 * p.trainer.config.batch_size;"
            f"short = dataclasses.replace(p.split, train=p.split.train.select(torch.arange(min(n, len(p.split.train)))));"
            f"p.trainer._train_epoch(p.model, short, p.optimizer, 0); p.evaluate();"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")


def profile_exact(model, split, optimizer, evaluation, batch_size: int) -> tuple[dict[str, str], float]:
    """torch.profiler tables (top ops by self CPU time) of two training steps on one batch of ``batch_size`` windows
    and of one evaluation, and the share of the training steps' self CPU time spent in matrix products."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from seqrec_lib.train import training_batch

    batch = training_batch(model, split, torch.arange(min(batch_size, len(split.train)), device=split.train.device))
    with profile(activities=[ProfilerActivity.CPU]) as train_prof:
        for _ in range(2):
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with profile(activities=[ProfilerActivity.CPU]) as eval_prof:
        evaluation.evaluate(model, split, "test", evaluation.EvalProtocol())
    table = lambda p: p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)   # noqa: E731
    return {"train_step": table(train_prof), "evaluation": table(eval_prof)}, matmul_share(train_prof.key_averages())


MATMUL_OPS = frozenset({"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::addbmm",
                        "aten::_addmm_activation"})


def matmul_share(events) -> float:
    """The fraction of the profiled self CPU time spent in matrix products (``MATMUL_OPS``)."""
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total if total else float("nan")


def eager_rows(results: list[dict]) -> dict[tuple[str, str], dict]:
    """(model, dataset) → its successful eager row, the base of every speed-up."""
    return {(r["model"], r["dataset"]): r for r in results if r.get("path") == "eager" and "error" not in r}


def matmul_bounds(results: list[dict]) -> list[str]:
    """For each profiled exact row: the epoch if everything but its matrix products were free (share × median
    epoch), and the speed-up over eager that bound allows. The profiler inflates small ops, so the share is if
    anything too low and the bound too generous."""
    eager = eager_rows(results)
    out = []
    for r in results:
        share = r.get("matmul_share")
        if share is None:
            continue
        floor = share * r["median_epoch_seconds"]
        base = eager.get((r["model"], r["dataset"]))
        limit = f", at most {base['median_epoch_seconds'] / floor:.2f}x over eager" if base else ""
        out.append(f"{r['model']} on {r['dataset']}: matrix products are {share:.0%} of a profiled training step; "
                   f"with everything else free an epoch would still take {floor:.2f} s{limit}")
    return out


def run_group(group: dict) -> list[dict]:
    """``measure`` in a fresh process (clean imports), then each path's peak memory."""
    done = subprocess.run([sys.executable, __file__, "--measure", json.dumps(group)], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        return [{"model": m, "dataset": d, "path": p, "error": error} for m, d, p in group["runs"]]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        if group["device"] == "cpu":
            row["peak_rss_mb"] = peak_memory(group, row)
    return rows


def table(results: list[dict]) -> str:
    lines = ["| model | dataset | path | s/epoch (median) | steps/s | eval s (all users) | peak MB (CPU: resident, "
             "CUDA: allocated) | threads | "
             "speed-up vs eager (epoch / eval) |", "|---|---|---|---|---|---|---|---|---|"]
    eager = eager_rows(results)
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['dataset']} | {r['path']} | failed: {r['error'][:80]} | | | | | |")
            continue
        base = eager.get((r["model"], r["dataset"]))
        peak = r.get("peak_rss_mb", r.get("peak_gpu_mb", float("nan")))
        ratio = (f"{base['median_epoch_seconds'] / r['median_epoch_seconds']:.2f}x / "
                 f"{base['eval_seconds'] / r['eval_seconds']:.2f}x") if base else "-"
        lines.append(f"| {r['model']} | {r['dataset']} | {r['path']} | {r['median_epoch_seconds']:.1f} | "
                     f"{r['steps_per_second']:.2f} | {r['eval_seconds']:.2f} | {peak:.0f} | {r['threads']} | "
                     f"{ratio} |")
    return "\n".join(lines)


def agreement(results: list[dict]) -> list[str]:
    """Exact vs padded reference, same seed and epochs: the largest test-metric difference per model."""
    out = []
    by = {(r["model"], r["dataset"], r["path"]): r for r in results if "error" not in r}
    for (model, dataset, path), r in by.items():
        ref = by.get((model, dataset, "padded"))
        if path != "exact" or ref is None:
            continue
        diff = max(abs(r["test"][k] - ref["test"][k]) for k in r["test"])
        out.append(f"{model} on {dataset}: max |test metric difference| exact vs padded after {r['epochs']} epochs = "
                   f"{diff:.2e} ({'OK' if diff <= 1e-4 else 'ABOVE 1e-4'})")
    return out


def model_ratios(results: list[dict]) -> list[str]:
    """Each exact row's epoch and evaluation time over SASRec-CE's on the same dataset, measured in the same group."""
    exact = [r for r in results if r.get("path") == "exact" and "error" not in r]
    base = {(r["group"], r["dataset"]): r for r in exact if r["model"] == "sasrec-ce"}
    out = []
    for r in exact:
        ref = base.get((r["group"], r["dataset"]))
        if ref is not None and r is not ref:
            out.append(f"{r['model']} / sasrec-ce on {r['dataset']} (exact, same process): epoch "
                       f"{r['median_epoch_seconds'] / ref['median_epoch_seconds']:.2f}x, evaluation "
                       f"{r['eval_seconds'] / ref['eval_seconds']:.2f}x")
    return out


def write_report(results: list[dict], out: Path, threads: int, device: str = "cpu") -> dict:
    """The table, the agreement check, every row and provenance (CPU model, ``threads``; or the GPU), as JSON at
    ``out``."""
    sys.path.insert(0, str(ROOT))
    import torch

    from seqrec_lib.records import provenance, write_json_atomic

    torch.set_num_threads(threads)                          # the measured processes' count, for device_name

    report = {"table": table(results), "agreement": agreement(results), "model_ratios": model_ratios(results),
              "matmul_bounds": matmul_bounds(results), "rows": results,
              "eager_commit": EAGER_COMMIT, "provenance": provenance(torch.device(device)),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    write_json_atomic(out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="model:dataset,... of " + ", ".join(MODELS))
    parser.add_argument("--paths", help=f"of {', '.join(PATHS)} (default: all, the switches bf16 and compile on "
                                         "SASRec-CE only; named here, on every row)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--agreement", default="sasrec-ce:beauty", help="rows whose padded reference is also run")
    parser.add_argument("--together", action="store_true", help="all rows in one process, epochs interleaved")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where every path trains and evaluates")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed_cpu.json")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return 0
    unknown = set(args.paths.split(",") if args.paths else ()) - set(PATHS)
    if unknown:
        parser.error(f"--paths: unknown {sorted(unknown)}, expected some of {', '.join(PATHS)}")
    runs = []
    for spec in args.rows.split(","):
        model, dataset = spec.split(":")
        paths = (args.paths.split(",") if args.paths else
                 [p for p in PATHS if model == "sasrec-ce" or p not in ("bf16", "compile")])
        paths += ["padded"] if spec in args.agreement.split(",") else []
        runs.append([[model, dataset, p] for p in paths])
    groups = [sum(runs, [])] if args.together else runs
    results = []
    for i, group_runs in enumerate(groups):
        group = {"id": i, "runs": group_runs, "epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                 "device": args.device}
        print("running " + ", ".join(":".join(r) for r in group_runs) + " ...", flush=True)
        results.extend(run_group(group))
        print("\n".join(table(results).splitlines()[-len(group_runs):]), flush=True)
        write_report(results, args.out, args.threads, args.device)     # after every group: nothing lost if cut off
    report = write_report(results, args.out, args.threads, args.device)
    notes = report["agreement"] + report["model_ratios"] + report["matmul_bounds"]
    print("\n" + report["table"] + "\n\n" + "\n".join(notes))
    for r in results:
        for part, text in r.get("profile", {}).items():
            print(f"\nprofile of the exact path ({r['model']} on {r['dataset']}), {part}:\n{text}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
