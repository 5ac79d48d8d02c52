"""Sweeps through the executors: "local" (sequential) and "ray" (a local Ray with 2 CPUs, when installed).

The Ray tests share one Ray started by this module and shut it down at its end. A failing run is made with
an invalid device: ``device`` does not enter the run key, so the same spec with a valid device is the same
run, which is what a second sweep after a crash (or a fix) re-runs.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import seqrec_lib.experiments as ex
from seqrec_lib.executors import Job, LocalExecutor, Outcome, RayExecutor, get_executor
from seqrec_lib.notebook_runner import check_parameters
from seqrec_lib.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
SMOKE = get_profile("smoke")
DATA = "synthetic"


def _broken(spec: ex.RunSpec) -> ex.RunSpec:
    """``spec`` failing as soon as it starts training (an unknown device), under the same run key."""
    return dataclasses.replace(spec, train_config=dataclasses.replace(spec.train_config, device="nowhere"))


def _sweep() -> list[ex.RunSpec]:
    """The smoke profile's sweeps (head, expert at H=2, time): 5 + the MOJITO table's rows, FAME ones needing a
    pretraining."""
    return ex.head_sweep_specs(SMOKE, DATA) + ex.expert_sweep_specs(SMOKE, DATA, 2) + ex.time_specs(SMOKE, DATA)


def _failing_sweep() -> list[ex.RunSpec]:
    """SASRec-CE(H=1) fails; FAME w/o MoE(H=1) needs it; SASRec-BCE is independent."""
    sasrec, fame = ex.sasrec_ce_spec(SMOKE, DATA, 1, 0), ex.fame_spec(SMOKE, DATA, 1, 1, 0)
    return [_broken(sasrec), fame, ex.sasrec_bce_spec(SMOKE, DATA, 0)]


def _starts(folder: Path) -> int:
    """How many times a sweep started the run of ``folder`` (one line per start in its run.log)."""
    log = folder / ex.RUN_LOG
    return sum(" on " in line and line.startswith("[") for line in log.read_text().splitlines()) if log.exists() else 0


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


# ---------------------------------------------------------------- the executor interface, no training


def test_local_executor_reports_errors_and_blocks_dependants():
    jobs = [Job(2), Job(-1), Job(3, needs=(0,)), Job(4, needs=(1,)), Job(5, needs=(3,))]
    seen = []
    outcomes = LocalExecutor().execute(_square, jobs, lambda i, o: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]
    assert [o.result for o in outcomes] == [4, None, 9, None, None]
    assert "ValueError: negative: -1" in outcomes[1].error and not outcomes[1].ok
    assert (outcomes[3].blocked_by, outcomes[4].blocked_by) == (1, 3)      # transitively: 4 needs 3 needs 1
    with pytest.raises(ValueError, match="only need earlier jobs"):
        LocalExecutor().execute(_square, [Job(1, needs=(0,))])


def test_get_executor():
    assert get_executor().name == "local" and get_executor("ray", "auto").address == "auto"
    executor = RayExecutor()
    assert get_executor(executor) is executor
    with pytest.raises(ValueError, match="known executors: local, ray"):
        get_executor("dask")
    with pytest.raises(ValueError, match="address"):
        get_executor("local", "auto")


def test_outcome():
    assert Outcome(result=None).ok and not Outcome(error="x").ok and not Outcome(blocked_by=0).ok


def test_profile_resource_requests():
    assert (SMOKE.run_cpus, SMOKE.run_gpus) == (1.0, 0.0) and get_profile("paper").run_gpus == 0.25
    for bad in ({"run_cpus": 0}, {"run_gpus": -0.5}, {"run_gpus": 1.5}):
        with pytest.raises(ValueError, match="run_"):
            dataclasses.replace(SMOKE, **bad)
    assert dataclasses.replace(SMOKE, run_gpus=2).run_gpus == 2


@pytest.mark.parametrize("args, message", [
    (["--executor", "dask"], "--executor must be local or ray, got 'dask'"),
    (["--address", "auto"], "--address is for --executor ray"),
])
def test_run_all_rejects_a_bad_executor(tmp_path, args, message):
    result = subprocess.run([str(ROOT / "run_all.sh"), *args], cwd=tmp_path, text=True, capture_output=True,
                            env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 2 and message in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("notebook", ["02_head_sweep", "03_expert_sweep", "06_results"])
def test_sweep_notebooks_take_the_executor(notebook):
    """run_all.sh passes ``-p executor ... [-p address ...]`` to the notebooks that sweep."""
    check_parameters(ROOT / "notebooks" / f"{notebook}.ipynb", ["executor", "address"])
    assert "executor=executor, address=address" in (ROOT / "notebooks" / f"{notebook}.py").read_text()


# ---------------------------------------------------------------- local sweeps


def test_failed_run_is_reported_with_its_spec_and_its_dependant_is_blocked(tmp_path):
    specs = _failing_sweep()
    with pytest.raises(ex.SweepError) as info:
        ex.run_many(specs, SMOKE, tmp_path)
    error = info.value
    assert [(f.spec.label, f.dependency) for f in error.failures] == [("SASRec-CE", None),
                                                                     ("FAME w/o MoE", specs[0])]
    assert "nowhere" in error.failures[0].error
    message = str(error)
    assert "SASRec-CE (model=sasrec, dataset=synthetic, H=1, seed=0)" in message
    assert "FAME w/o MoE (model=fame, dataset=synthetic, H=1, N=1, seed=0): not run, it needs SASRec-CE" in message
    assert error.records[:2] == [None, None] and error.records[2]["label"] == "SASRec-BCE"
    # the failing run's traceback is in its run folder; the independent run finished and is in the store
    assert "nowhere" in (ex.run_dir(specs[0], SMOKE, tmp_path) / ex.RUN_LOG).read_text()
    assert ex.is_done(specs[2], SMOKE, tmp_path) and not ex.is_done(specs[1], SMOKE, tmp_path)


def test_local_sweep_resumes_only_the_missing_runs(tmp_path):
    specs = _failing_sweep()
    with pytest.raises(ex.SweepError):
        ex.run_many(specs, SMOKE, tmp_path)
    fixed = [ex.sasrec_ce_spec(SMOKE, DATA, 1, 0)] + specs[1:]
    records = ex.run_many(fixed, SMOKE, tmp_path)
    assert [r["label"] for r in records] == ["SASRec-CE", "FAME w/o MoE", "SASRec-BCE"]
    assert [_starts(Path(r["run_dir"])) for r in records] == [2, 1, 1]   # SASRec-CE: failed once, then trained
    assert records[1]["pretrained"]["reused"] and records[1]["pretrained"]["run_id"] == records[0]["run_id"]


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module, shut down at its end; the signal handlers ``ray.init`` installs
    (SIGTERM) are put back, so the trainer's signal tests that run later in the process see the defaults."""
    ray = pytest.importorskip("ray", reason='the "ray" executor needs pip install -e ".[distributed]"')
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for attempt in (1, 2):     # a cold first start can miss Ray's 15 s agent start-up window; the retry is warm
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _comparable(records: list[dict]) -> list[tuple]:
    return [(r["label"], r["run_id"], Path(r["run_dir"]).name, json.dumps(r["metrics"], sort_keys=True))
            for r in records]


def test_ray_sweep_gives_the_records_of_the_local_sweep(ray_local, tmp_path):
    local = ex.run_many(_sweep(), SMOKE, tmp_path / "local")
    distributed = ex.run_many(_sweep(), SMOKE, tmp_path / "ray", executor="ray")
    assert _comparable(distributed) == _comparable(local)
    folders = sorted((tmp_path / "ray").iterdir())
    assert [p.name for p in folders] == sorted(p.name for p in (tmp_path / "local").iterdir())
    assert len(folders) == len(_sweep())      # one per run; the FAME runs reused the SASRec-CE runs as pretrainings
    assert all(_starts(folder) == 1 for folder in folders)         # every run, pretrainings too, trained once
    assert all(r["pretrained"]["reused"] for r in distributed if r["model"] == "fame")
    # the smoke profile reserves no GPU, so its runs train on the CPU under Ray even on a machine with GPUs
    assert {r["train_config"]["device"] for r in distributed} == {"cpu"}


def test_ray_reports_a_failed_dependency_and_resumes_only_the_missing_runs(ray_local, tmp_path):
    specs = _failing_sweep()
    with pytest.raises(ex.SweepError) as info:
        ex.run_many(specs, SMOKE, tmp_path, executor="ray")
    assert [(f.spec.label, f.dependency) for f in info.value.failures] == [("SASRec-CE", None),
                                                                          ("FAME w/o MoE", specs[0])]
    assert "nowhere" in info.value.failures[0].error
    assert info.value.records[2]["label"] == "SASRec-BCE"
    bce = Path(info.value.records[2]["run_dir"])
    stamp = (bce / "result.json").stat().st_mtime_ns
    # the sweep again, the failing run mended: only the failed run and the one it blocked are trained
    records = ex.run_many([ex.sasrec_ce_spec(SMOKE, DATA, 1, 0)] + specs[1:], SMOKE, tmp_path, executor="ray")
    assert [_starts(Path(r["run_dir"])) for r in records] == [2, 1, 1]
    assert (bce / "result.json").stat().st_mtime_ns == stamp
    assert records[1]["pretrained"]["run_id"] == records[0]["run_id"]
    local = ex.run_many(_failing_sweep()[1:], SMOKE, tmp_path / "local")     # FAME w/o MoE, BCE: as locally
    assert _comparable(records[1:]) == _comparable(local)
