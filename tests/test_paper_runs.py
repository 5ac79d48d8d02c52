"""scripts/paper_runs.py: several processes share a plan by claiming units (one holder, whatever the race; a killed
process's claim is free at once); a worker killed by a signal fails the run; a record whose commit fails fails the run
loudly and is committed by the next start; --commit is refused on a modified tree unless --allow-dirty."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import load_script, need_datasets

ROOT = Path(__file__).resolve().parents[1]


def test_a_claim_is_held_once_and_a_leftover_claim_file_holds_nothing(tmp_path):
    """Whatever an earlier process left in ``claimed.pid`` (nothing, garbage, a pid alive or dead) is no claim: only
    the lock counts. The file stays after release (emptied) and the unit can be claimed again."""
    pr = load_script("paper_runs")
    folder = tmp_path / "sasrec-abc"
    assert pr.claim(folder) and (folder / "claimed.pid").read_text().strip() == str(os.getpid())
    assert pr.claim(folder)                                   # this process holds it already
    pr.release([folder])
    assert (folder / "claimed.pid").exists() and pr.claim(folder)
    pr.release([folder])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for k, left in enumerate(["", "garbage", "0", str(live.pid), str(os.getppid()), str(2**22 + 7)]):
            other = tmp_path / f"unit{k}"
            other.mkdir()
            (other / "claimed.pid").write_text(left)
            assert pr.claim(other), f"a claim file holding {left!r} counted as a live holder"
            pr.release([other])
    finally:
        live.kill()
        live.wait()


def _fork():
    import multiprocessing

    return multiprocessing.get_context("fork")


def test_a_claim_left_by_a_killed_process_is_free_at_once(tmp_path):
    """kill -9 of the holder frees its claim as soon as it has exited, before anyone reaps it (its pid still
    exists, as a zombie: a pid check would call it alive)."""
    pr = load_script("paper_runs")
    folder, ctx = tmp_path / "fame-abc", _fork()
    held, verdict = ctx.Event(), ctx.Value("i", -1)

    def holder():
        verdict.value = pr.claim(folder)
        held.set()
        time.sleep(60)

    child = ctx.Process(target=holder)
    child.start()
    try:
        assert held.wait(30) and verdict.value == 1
        assert not pr.claim(folder)                           # another live process holds it
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)   # exited, not reaped
        assert pr.claim(folder)
        pr.release([folder])
    finally:
        child.kill()
        child.join(30)


def test_processes_racing_for_one_claim_never_both_hold_it(tmp_path):
    """4 processes race for one claim, a stale one (its pid long gone) each time, 200 times; nobody releases before
    all have tried. In the second half each process is also delayed at random (0-1 ms) before every os call the claim
    makes, as a busy machine deschedules it. Exactly one holds it each time (the pid-file takeover gave two or three
    holders in 0-20% of the plain trials, depending on the load, and in ~70% of the delayed ones)."""
    import random
    from collections import Counter

    pr = load_script("paper_runs")
    procs, trials, ctx = 4, 200, _fork()
    folders = [tmp_path / f"unit{t}" for t in range(trials)]
    for folder in folders:
        folder.mkdir()
        (folder / "claimed.pid").write_text(str(2**22 + 7))      # beyond any pid: its holder is gone
    barrier, held = ctx.Barrier(procs, timeout=60), ctx.Array("i", procs * trials)

    class Descheduled:
        """``os`` whose functions each start after a random pause."""

        def __getattr__(self, name):
            value = getattr(os, name)
            if not callable(value):
                return value
            return lambda *args, **kwargs: (time.sleep(random.uniform(0, 1e-3)), value(*args, **kwargs))[1]

    def racer(k):
        random.seed(k)
        for t, folder in enumerate(folders):
            if t == trials // 2:
                pr.os = Descheduled()                           # this forked process's copy of the module only
            barrier.wait()
            ok = pr.claim(folder)
            held[t * procs + k] = ok
            barrier.wait()                                      # every process has tried while the holder holds
            if ok:
                pr.release([folder])

    racers = [ctx.Process(target=racer, args=(k,)) for k in range(procs)]
    for r in racers:
        r.start()
    for r in racers:
        r.join(120)
        if r.exitcode is None:
            r.kill()
    assert [r.exitcode for r in racers] == [0] * procs
    holders = [sum(held[t * procs:(t + 1) * procs]) for t in range(trials)]
    assert holders == [1] * trials, f"holders per trial: {dict(Counter(holders))}"


def test_a_deadline_stops_the_process_through_the_same_path_as_a_cut_off_run():
    code = (f"import importlib.util, signal, time\n"
            f"spec = importlib.util.spec_from_file_location('paper_runs', {str(ROOT / 'scripts' / 'paper_runs.py')!r})\n"
            "pr = importlib.util.module_from_spec(spec); spec.loader.exec_module(pr)\n"
            "signal.signal(signal.SIGTERM, pr._interrupt); pr.stop_after(0.3)\n"
            "try:\n    time.sleep(20)\nexcept pr.TrainingInterrupted as stop:\n    print('stopped', stop.signum)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"stopped {int(__import__('signal').SIGTERM)}", done.stderr


@pytest.mark.realdata
def test_workers_share_a_plan_and_each_logs_apart(tmp_path, monkeypatch):
    """Two workers on units whose records are committed: each finds them done and exits 0."""
    import argparse

    need_datasets("ml-100k")                                # the units' keys cover the data

    pr = load_script("paper_runs")
    monkeypatch.setattr(pr, "PAPER", tmp_path)              # the logs; the records read are the committed ones
    args = argparse.Namespace(plan="ml100k-mojito", threads=1, commit=False, limit=2, workers=2)
    assert pr.run_workers(args) == 0
    for k in (1, 2):
        log = (tmp_path / "logs" / f"ml100k-mojito.worker{k}.log").read_text()
        assert "[1/2] done already" in log and "[2/2] done already" in log


def test_plans_run_in_order_in_rounds_until_each_is_published(monkeypatch):
    """--plan a b c with workers: rounds of a until all its units are published, then b; c not ready → 2; a round
    that publishes nothing ends the chain (a unit failing again and again is not retried forever)."""
    import argparse

    pr = load_script("paper_runs")
    left, rounds = {"a": 3, "b": 1}, []

    def fake_pending(plan, profile, limit=None):
        if plan == "c":
            raise pr.NotReady("c waits for b's choices")
        return [Path(f"{plan}{k}.json") for k in range(left[plan])]

    def two_units_a_round(args):
        rounds.append(args.plan)
        left[args.plan] -= min(2, left[args.plan])
        return 0

    monkeypatch.setattr(pr, "pending", fake_pending)
    monkeypatch.setattr(pr, "run_workers", two_units_a_round)
    args = argparse.Namespace(plans=["a", "b", "c"], workers=2, threads=1, commit=False, limit=None)
    assert pr.run_plans_with_workers(args) == 2
    assert rounds == ["a", "a", "b"]
    left["a"], rounds[:] = 1, []
    monkeypatch.setattr(pr, "run_workers", lambda args: rounds.append(args.plan) or 0)    # publishes nothing
    assert pr.run_plans_with_workers(args) == 0 and rounds == ["a"]


def _publish_fake(pr, profile, specs, valid_scores):
    """Records of ``specs`` with the given validation NDCG@20, where paper_runs reads published records."""
    import dataclasses
    import json

    for spec, score in zip(specs, valid_scores):
        path = pr.published(spec, profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metrics": {"valid": {"full": {"NDCG@20": score}}},
                                    "model_config": dataclasses.asdict(spec.model_config),
                                    "train_config": dataclasses.asdict(spec.train_config)}))


@pytest.mark.realdata
def test_issue12_plans_follow_the_validation_choices_and_wait_for_them(tmp_path, monkeypatch):
    import dataclasses

    import pytest

    from seqrec_lib.profiles import get_profile

    need_datasets("beauty", "toys", "sports")

    from seqrec_lib import plans as pr                      # the plans live in the library
    monkeypatch.setattr(pr, "PAPER", tmp_path)
    # the paper profile before any choice moved into it (it now holds the committed searches' choices)
    paper = dataclasses.replace(get_profile("paper"), fame_overrides={}, fame_wf_init="random",
                                fame_attn_residual="slice")
    search = pr.beauty_sasrec(paper)
    _publish_fake(pr, paper, search[:5], [0.07] * 5)
    with pytest.raises(pr.NotReady, match="beauty-sasrec has 1 of 6 units unpublished"):
        pr.beauty_fame_step3(paper)
    _publish_fake(pr, paper, search, [0.07, 0.08, 0.07, 0.07, 0.07, 0.07])     # the paper's setting wins
    step3 = pr.beauty_fame_step3(paper)
    assert [(s.model_config.wf_init, s.model_config.attn_residual) for s in step3] == [
        ("block_selector", "slice"), ("block_selector", "none"), ("random", "slice"), ("random", "none")]
    assert {s.train_config.lr for s in step3} == {paper.train.lr}
    _publish_fake(pr, paper, search, [0.07, 0.07, 0.07, 0.09, 0.07, 0.07])     # lr 5e-4, batch 512 wins
    with pytest.raises(pr.NotReady, match=r"chose \{.*'lr': 0.0005, 'batch_size': 512\} on validation"):
        pr.beauty_fame_step3(paper)
    chosen = dataclasses.replace(paper, fame_overrides={"lr": 5e-4, "batch_size": 512})
    assert pr.beauty_sasrec(chosen) == search                                 # the search keeps its units
    assert pr.beauty_baselines(chosen) == pr.beauty_baselines(paper)          # and the baselines theirs
    step3 = pr.beauty_fame_step3(chosen)
    _publish_fake(pr, chosen, step3, [0.08, 0.07, 0.07, 0.07])                # block_selector + slice wins
    with pytest.raises(pr.NotReady, match="fame_wf_init"):
        pr.PLANS["beauty-fig5"](chosen)
    with pytest.raises(pr.NotReady, match="fame_wf_init"):
        pr.PLANS["beauty-case-study"](chosen)
    frozen = dataclasses.replace(chosen, fame_wf_init="block_selector")
    fig5 = pr.PLANS["beauty-fig5"](frozen)
    assert {s.model_config.n_heads for s in fig5} == set(frozen.heads)
    toys5 = pr.PLANS["toys-fig5"](frozen)                                     # the same sweep on Toys
    assert [dataclasses.replace(s, dataset="beauty") for s in toys5] == fig5 and {s.dataset for s in toys5} == {"toys"}
    with pytest.raises(pr.NotReady, match="toys-fig5 has"):
        pr.PLANS["toys-fig6"](frozen)
    assert all(s.model_config.wf_init == "block_selector" for s in fig5 if s.model == "fame")
    with pytest.raises(pr.NotReady, match="beauty-fig5 has"):
        pr.PLANS["beauty-table2"](frozen)
    # Fig. 7's FAME: the run notebook 05 reads back (explore.load_case_models), at the case-study H
    (case,) = pr.PLANS["beauty-case-study"](frozen)
    assert (case.model, case.dataset, case.seed) == ("fame", "beauty", frozen.seeds[0])
    assert (case.model_config.n_heads, case.model_config.n_experts) == (frozen.case_study_heads,
                                                                        frozen.single_experts)
    assert case.model_config.wf_init == "block_selector"


@pytest.mark.realdata
def test_every_committed_record_is_still_a_unit_of_a_plan():
    """A change of the paper profile (the search's choice moving into it, say) must not orphan a finished run:
    each committed record under outputs/paper/records is the published record of some plan's unit."""
    need_datasets("beauty", "toys", "sports", "ml-100k")
    from seqrec_lib.profiles import get_profile

    from seqrec_lib import plans as pr

    profile = get_profile("paper")
    units = set()
    for name, plan in pr.PLANS.items():
        try:
            units |= {pr.published(spec, profile).name for spec in plan(profile)}
        except pr.NotReady:
            continue
    committed = {p.name for p in (ROOT / "outputs" / "paper" / "records").glob("*.json")}
    assert committed, "no committed records found"
    assert committed <= units, f"records no plan produces any more: {sorted(committed - units)}"


@pytest.mark.realdata
def test_fame_start_names_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    """scripts/fame_start.py reads pretrainings from the run folders; where there are none it says so per row."""
    need_datasets("beauty")
    module = load_script("fame_start")
    monkeypatch.setattr(module, "PAPER", tmp_path)
    assert module.main(["--plan", "beauty-fig5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| beauty")]
    assert len(rows) == 5 and all("no checkpoint at" in row for row in rows), rows


def _no_training(pr, monkeypatch) -> list[str]:
    """paper_runs with its training stubbed: the plans it would have run, in order."""
    ran = []
    monkeypatch.setattr(pr, "run_plan", lambda args: ran.append(args.plan))
    monkeypatch.setattr(pr, "run_plans_with_workers", lambda args: ran.extend(args.plans) or 0)
    return ran


def test_commit_is_refused_before_any_training_when_the_tree_is_modified(monkeypatch, capsys):
    import signal

    pr = load_script("paper_runs")
    ran = _no_training(pr, monkeypatch)
    monkeypatch.setattr(pr, "uncommitted_code", lambda: ["seqrec_lib/models/losses.py", "README.md"])
    previous = signal.getsignal(signal.SIGTERM)                  # main sets its own SIGTERM handler
    try:
        for workers in ("1", "2"):
            assert pr.main(["--plan", "beauty-sasrec", "--commit", "--workers", workers]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--commit refused" in err and "--allow-dirty" in err
            assert "seqrec_lib/models/losses.py, README.md" in err
        assert ran == []
        assert pr.main(["--plan", "beauty-sasrec", "--commit", "--allow-dirty"]) == 0      # said so: runs
        assert pr.main(["--plan", "beauty-sasrec"]) == 0                                   # nothing committed: runs
        monkeypatch.setattr(pr, "uncommitted_code", lambda: [])
        assert pr.main(["--plan", "beauty-sasrec", "--commit"]) == 0                       # a clean tree: runs
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ran == ["beauty-sasrec"] * 3 and capsys.readouterr().err == ""


def test_the_workers_are_started_with_allow_dirty_when_it_was_given(tmp_path, monkeypatch):
    import argparse

    pr = load_script("paper_runs")
    monkeypatch.setattr(pr, "PAPER", tmp_path)
    monkeypatch.setattr(pr.time, "sleep", lambda s: None)
    started = []

    class Worker:
        pid = 1

        def __init__(self, command, **kwargs):
            started.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(pr.subprocess, "Popen", Worker)
    for allow in (True, False):
        args = argparse.Namespace(plan="beauty-sasrec", threads=1, commit=True, limit=None, workers=2,
                                  allow_dirty=allow)
        assert pr.run_workers(args) == 0
    assert ["--allow-dirty" in c for c in started] == [True, True, False, False]
    assert all("--commit" in c for c in started)


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_a_modified_tracked_file_makes_the_tree_dirty_an_untracked_one_does_not(tmp_path):
    from seqrec_lib import records

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-q", "-m", "code")
    (tmp_path / "new_record.json").write_text("{}")             # a record copied in, not committed yet
    assert records.modified_files(tmp_path) == [] and not records.git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.modified_files(tmp_path) == ["code.py"] and records.git_commit(tmp_path).endswith("+dirty")


def test_a_worker_killed_by_a_signal_fails_the_run_and_says_which(tmp_path, monkeypatch, capsys):
    """A worker's death by SIGKILL makes run_workers' status 128 + 9, with one line naming the worker and signal."""
    import argparse

    pr = load_script("paper_runs")
    monkeypatch.setattr(pr, "PAPER", tmp_path)
    monkeypatch.setattr(pr.time, "sleep", lambda s: None)
    real_popen, started = subprocess.Popen, []
    fates = ["pass", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "pass"]

    def worker(command, **kwargs):                              # the k-th worker lives out fates[k]
        started.append(command)
        return real_popen([sys.executable, "-c", fates[len(started) - 1]], **kwargs)

    monkeypatch.setattr(pr.subprocess, "Popen", worker)
    args = argparse.Namespace(plan="beauty-sasrec", threads=1, commit=False, limit=None, workers=3)
    assert pr.run_workers(args) == 128 + 9
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "worker 2" in err[0] and "SIGKILL" in err[0], err
    fates[1] = "import sys; print('paper_runs.py: git commit of r.json failed', file=sys.stderr); sys.exit(3)"
    started.clear()
    assert pr.run_workers(args) == 3                             # an exit status of its own is passed on as it is
    err = capsys.readouterr().err.splitlines()                  # with the last line of its log
    assert len(err) == 1 and "worker 2" in err[0]
    assert err[0].endswith("ends: paper_runs.py: git commit of r.json failed"), err
    # the SIGTERM this process passed on (a deadline) killing a worker before its own handler was set: a clean stop
    fates[1] = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    started.clear()
    pr.STOPPED.set()
    assert pr.run_workers(args) == 0
    out, err = capsys.readouterr()
    assert err == "" and "worker 2" in out and "SIGTERM" in out


def _git(repo, *args, check=True):
    return subprocess.run(["git", *args], cwd=repo, check=check, capture_output=True, text=True)


@pytest.fixture
def git_repo(tmp_path, monkeypatch):
    """A fresh repository as paper_runs' ROOT (PAPER inside it), with no git identity anywhere (no global or system
    config, no identity in the environment, no guessing from the host name) until a test sets one."""
    if not shutil.which("git"):
        pytest.skip("needs git")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL",
                 "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.useConfigOnly", "true")
    (repo / "README").write_text("x\n")
    _git(repo, "add", "README")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    pr = load_script("paper_runs")
    monkeypatch.setattr(pr, "ROOT", repo)
    monkeypatch.setattr(pr, "PAPER", repo / "outputs" / "paper")
    return pr, repo


def _identity(repo):
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")


def _committed(repo, path):
    """True when ``path`` is in HEAD as it is on disk."""
    rel = str(path.relative_to(repo))
    return (_git(repo, "ls-files", "--error-unmatch", rel, check=False).returncode == 0
            and _git(repo, "status", "--porcelain", "--", rel).stdout == "")


def _stub_training(pr, monkeypatch, units=("u1", "u2")) -> list[str]:
    """Plan "p" of ``units`` whose training only writes a record: the units trained, in order."""
    import json
    from types import SimpleNamespace

    trained = []
    specs = [SimpleNamespace(label="SASRec-CE", dataset="toy", name=u) for u in units]

    def fake_run(spec, profile, root):
        trained.append(spec.name)
        folder = Path(root) / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        record = {"run_dir": str(folder), "best_epoch": 1, "epochs_run": 2,
                  "metrics": {"test": {"full": {"NDCG@10": 0.1, "HR@10": 0.2}}}, "provenance": {"device": "cpu"}}
        (folder / "result.json").write_text(json.dumps(record))
        return record

    from seqrec_lib import plans

    for module in (pr, plans):               # the script's names and the library's pending() alike
        monkeypatch.setattr(module, "PLANS", {"p": lambda profile: specs})
        monkeypatch.setattr(module, "published", lambda spec, profile: pr.PAPER / "records" / f"{spec.name}.json")
    monkeypatch.setattr(pr, "prerequisites", lambda spec: [])
    monkeypatch.setattr(pr, "run_dir", lambda spec, profile, root: Path(root) / spec.name)
    monkeypatch.setattr(pr, "run", fake_run)
    monkeypatch.setattr(pr, "get_profile", lambda name: None)
    monkeypatch.setattr(pr, "uncommitted_code", lambda: [])
    monkeypatch.setattr(pr.torch, "set_num_threads", lambda n: None)
    return trained


def _main(pr, argv):
    import signal

    previous = signal.getsignal(signal.SIGTERM)                 # main sets its own SIGTERM handler
    try:
        return pr.main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_commit_git_refuses_fails_the_run_and_the_next_start_commits_the_record(git_repo, monkeypatch, capsys):
    pr, repo = git_repo
    trained = _stub_training(pr, monkeypatch)
    u1, u2 = (pr.PAPER / "records" / f"{u}.json" for u in ("u1", "u2"))
    assert _main(pr, ["--plan", "p", "--commit"]) == 1          # no identity: git refuses
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outputs/paper/records/u1.json" in err and "identity unknown" in err, err
    assert trained == ["u1"] and u1.exists() and not _committed(repo, u1)    # no further unit; the record stays
    _identity(repo)
    assert _main(pr, ["--plan", "p", "--commit"]) == 0
    out, err = capsys.readouterr()
    assert "u1.json was left uncommitted" in out and "done already" in out and err == ""
    assert trained == ["u1", "u2"] and _committed(repo, u1) and _committed(repo, u2)
    log = _git(repo, "log", "--format=%s").stdout
    assert "Paper run record: SASRec-CE on toy (u1), test NDCG@10 0.1000 (CPU) (committed by a later start)" in log


def test_a_record_left_uncommitted_is_committed_before_any_unit_with_workers_too(git_repo, monkeypatch, capsys):
    """A record copied but never committed (a run cut off between the two, or an old failed commit) is not done:
    with --workers the parent commits it before it counts the plan's pending units."""
    pr, repo = git_repo
    _identity(repo)
    trained = _stub_training(pr, monkeypatch, units=("u1",))
    record = pr.PAPER / "records" / "u1.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"metrics": {"test": {"full": {"NDCG@10": 0.1}}}}')
    rounds = []
    monkeypatch.setattr(pr, "run_workers", lambda args: rounds.append(args.plan) or 0)
    assert _main(pr, ["--plan", "p", "--commit", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "u1.json was left uncommitted" in out and "every unit published" in out
    assert _committed(repo, record) and rounds == [] and trained == []


def test_a_commit_waits_for_a_held_index_lock_saying_so_and_gives_up_loudly(git_repo, monkeypatch, capsys):
    import threading

    pr, repo = git_repo
    _identity(repo)
    monkeypatch.setattr(pr, "COMMIT_RETRY_S", 0.2, raising=False)
    monkeypatch.setattr(pr, "COMMIT_LOCK_WAIT_S", 30.0, raising=False)
    record = repo / "outputs" / "paper" / "records" / "u1.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    threading.Timer(1.0, lock.unlink).start()                  # another git finishes a second later
    pr.commit(record, "a record")
    out = capsys.readouterr().out
    assert out.count("holds .git/index.lock") == 1 and _committed(repo, record), out
    # a lock nobody releases: given up after COMMIT_LOCK_WAIT_S, loudly, the record left
    real_sleep = time.sleep
    monkeypatch.setattr(pr.time, "sleep", lambda s: real_sleep(min(s, 0.2)))
    monkeypatch.setattr(pr, "COMMIT_LOCK_WAIT_S", 1.0, raising=False)
    record.write_text('{"changed": 1}')
    lock.write_text("")
    with pytest.raises(getattr(pr, "CommitFailed", AssertionError), match=r"u1\.json failed: .*index\.lock"):
        pr.commit(record, "a record, changed")
    assert "holds .git/index.lock" in capsys.readouterr().out and not _committed(repo, record)
