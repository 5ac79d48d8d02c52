"""scripts/paper_runs.py: several processes share a plan by claiming units; a dead process's claim is taken over;
--commit is refused on a modified tree unless --allow-dirty."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import load_script, need_datasets

ROOT = Path(__file__).resolve().parents[1]


def test_a_unit_is_claimed_once_and_a_dead_claim_is_taken_over(tmp_path):
    pr = load_script("paper_runs")
    folder = tmp_path / "sasrec-abc"
    assert pr.claim(folder) and (folder / "claimed.pid").read_text() == str(os.getpid())
    assert pr.claim(folder)                                   # this process holds it already
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / "claimed.pid").write_text(str(other.pid))   # a live other process holds it
        assert not pr.claim(folder)
    finally:
        other.kill()
        other.wait()
    assert pr.claim(folder)                                   # its process is gone: taken over
    assert (folder / "claimed.pid").read_text() == str(os.getpid())
    pr.release([folder])
    assert not (folder / "claimed.pid").exists()


def test_a_deadline_stops_the_process_through_the_same_path_as_a_cut_off_run():
    code = (f"import sys, signal, time; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import paper_runs as pr\n"
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

    pr = load_script("paper_runs")
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

    pr, profile = load_script("paper_runs"), get_profile("paper")
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
