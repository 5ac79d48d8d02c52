"""Run the pending real-data units of the paper protocol, one after another, and publish each finished record.

A unit is one ``RunSpec`` of the ``paper`` profile (FAME units pretrain their SASRec-CE first, as
``experiments.run`` does). Run folders (checkpoints) live under ``outputs/paper/runs/`` (ignored by git); each
finished record is copied to ``outputs/paper/records/<run folder>.json`` and, with ``--commit``, committed at once,
so a later session (or machine) skips it; a commit git refuses stops the run (exit status 1, git's error in one
line) and leaves the record, which the next start with ``--commit`` commits before anything else. A unit cut off
mid-way resumes from its last checkpoint when the folder is still there, else starts over: at most one unit is lost.
Several processes may run one plan at once (one per core, or per GPU): each claims the next unit nobody is running
(a ``flock`` on ``claimed.pid`` in its folder, which the kernel drops when the process ends, however it ends);
``--workers N`` starts N such processes (logs ``outputs/paper/logs/<plan>.worker<k>.log``), in rounds until every
unit of the plan is published (a worker killed by a signal makes the exit status 128 + the signal); several plans
(``--plan a b``) run in order, each to its end. SIGTERM, or ``--deadline SECONDS`` (a session's or a lent machine's
time), stops every process cleanly: the unit in training keeps its finished epochs for the next start, claims are
released, the exit status is 0. ``--commit`` is refused (exit 2, before any training) when the code comes from a
tree with uncommitted changes, whose records would name a '+dirty' commit (docs/protocol.md §9), unless
``--allow-dirty``. On a CPU where MKL's vendor shim helps it is loaded first, for the workers too
(``seqrec_lib.blas``; off: ``SEQREC_FAST_BLAS=0``).

    SEQREC_DATA_DIR=/path/to/data nohup python scripts/paper_runs.py --plan beauty-sasrec --threads 1 --commit \\
        > outputs/paper/logs/beauty-sasrec.log 2>&1 &
    SEQREC_DATA_DIR=/path/to/data python scripts/paper_runs.py --plan beauty-sasrec --workers 6 --deadline 500
    SEQREC_DATA_DIR=/path/to/data nohup python scripts/paper_runs.py --plan beauty-fig5 beauty-fig6 beauty-table2 \\
        --workers 2 --commit > outputs/paper/logs/chain.log 2>&1 &
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from seqrec_lib import records
from seqrec_lib.blas import fast_path_or_reexec
from seqrec_lib.experiments import RunSpec, prerequisites, run, run_dir
from seqrec_lib.plans import PAPER, PLANS, ROOT, NotReady, pending, published
from seqrec_lib.profiles import Profile, get_profile
from seqrec_lib.train import TrainingInterrupted

COMMIT_LOCK_WAIT_S = 120.0
"""How long ``commit`` waits, saying so, while another git holds ``.git/index.lock``, before it gives up."""
COMMIT_RETRY_S = 3.0
"""Seconds between two tries of ``commit`` while the lock is held."""


class CommitFailed(Exception):
    """A record could not be committed (git's error in the message); its file stays where it is, and the next
    start with ``--commit`` commits it (``commit_left_over``)."""


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def _git_error(done: subprocess.CompletedProcess) -> str:
    """git's error in one line: its first line, and any later ``fatal:``/``error:`` line."""
    lines = [line.strip() for line in f"{done.stderr or ''}\n{done.stdout or ''}".splitlines() if line.strip()]
    if not lines:
        return f"git exited with status {done.returncode}"
    return "; ".join(dict.fromkeys([lines[0], *(line for line in lines if line.startswith(("fatal:", "error:")))]))


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(ROOT).resolve()))
    except ValueError:
        return str(path)


def uncommitted(paths: list[Path]) -> dict[Path, str]:
    """Those of ``paths`` whose content on disk is not committed (untracked, added but not committed, modified,
    ignored), each with git's two-letter status; CommitFailed when git cannot tell (no repository, say)."""
    if not paths:
        return {}
    top = _git("rev-parse", "--show-toplevel")
    done = top if top.returncode else _git("status", "--porcelain", "-z", "--untracked-files=all",
                                           "--ignored=matching", "--", *map(str, paths))
    if done.returncode:
        raise CommitFailed(f"git status of {_shown(paths[0])}{' and others' if len(paths) > 1 else ''} failed: "
                           f"{_git_error(done)}")
    toplevel = Path(top.stdout.strip())
    wanted = {os.path.realpath(p): p for p in paths}
    entries, found = done.stdout.split("\0"), {}
    while entries:
        entry = entries.pop(0)
        if len(entry) < 4:
            continue
        if entry[0] in "RC":
            entries.pop(0)                                  # a rename's or copy's source
        path = wanted.get(os.path.realpath(toplevel / entry[3:]))
        if path is not None:
            found[path] = entry[:2]
    return found


def commit(path: Path, message: str) -> None:
    """Commit only ``path`` (other staged work is left alone). While another git holds ``.git/index.lock`` it says
    so and tries again every ``COMMIT_RETRY_S``, for at most ``COMMIT_LOCK_WAIT_S``. CommitFailed, with git's error
    in one line, when git refuses (no identity, say) or the lock outlasts that; the file stays either way."""
    deadline, waited = time.monotonic() + COMMIT_LOCK_WAIT_S, False
    while True:
        done = _git("add", "--", str(path))
        if done.returncode == 0:
            done = _git("commit", "-q", "-m", message, "--", str(path))
        if done.returncode == 0:
            if waited:
                print(f"committed {_shown(path)} once the lock was free", flush=True)
            return
        error = _git_error(done)
        locked = "index.lock" in error
        if not locked and not uncommitted([path]):
            return                                          # another process committed it meanwhile
        left = deadline - time.monotonic()
        if not locked or left <= 0:
            raise CommitFailed(f"git commit of {_shown(path)} failed: {error}"
                               + (f" (still held after {COMMIT_LOCK_WAIT_S:g} s)" if locked else ""))
        if not waited:
            print(f"git commit of {_shown(path)}: another git holds .git/index.lock; trying again every "
                  f"{COMMIT_RETRY_S:g} s for at most {COMMIT_LOCK_WAIT_S:g} s", flush=True)
            waited = True
        time.sleep(min(COMMIT_RETRY_S, left))


def record_message(name: str, record: dict[str, Any]) -> str:
    """The commit message of a unit's record: its test metrics and the device that trained it."""
    test = record["metrics"]["test"]["full"]
    sampled = record["metrics"]["test"].get("sampled")
    also = "" if sampled is None else f"; sampled NDCG@10 {sampled['NDCG@10']:.4f}"
    prov = record.get("provenance", {})
    device = "CPU" if prov.get("device", "cpu") == "cpu" else prov.get("device_name", prov["device"])
    return f"Paper run record: {name}, test NDCG@10 {test['NDCG@10']:.4f}{also} ({device})"


def commit_left_over(specs: list[RunSpec], profile: Profile) -> None:
    """Commit the records of ``specs`` that exist but are not committed (an earlier start's commit failed, or it
    was cut off between copying and committing), saying so, so that none counts as done while uncommitted."""
    names = {published(spec, profile): f"{spec.label} on {spec.dataset}" for spec in specs}
    for path, status in uncommitted([path for path in names if path.exists()]).items():
        name = f"{names[path]} ({path.stem})"
        print(f"{_shown(path)} was left uncommitted (git status {status.strip()!r}) by an earlier start: "
              f"committing it now", flush=True)
        try:
            message = record_message(name, json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError, AttributeError):
            message = f"Paper run record: {name}"
        commit(path, message + " (committed by a later start)")


_HELD: dict[str, int] = {}
"""The claims this process holds: a unit's folder → the open descriptor of its ``claimed.pid`` that holds the lock."""


def claim(folder: Path) -> bool:
    """Claim the unit trained in ``folder`` for this process, so several ``paper_runs.py`` processes can share one
    plan, each taking the next unclaimed unit: an exclusive ``flock`` on ``folder/claimed.pid``, on a descriptor
    kept open until ``release`` (the unit's whole training). The kernel drops the lock when the process ends,
    however it ends (kill -9 too), so a claim never goes stale and no pid is read: the pid written into the file is
    for people only. True when this process holds the claim (now or already), False when another process does."""
    key = os.path.abspath(folder)
    if key in _HELD:
        return True
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "claimed.pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = fd
    return True


def release(folders: list[Path]) -> None:
    """Give up this process's claims on ``folders``; each ``claimed.pid`` stays, emptied."""
    for folder in folders:
        fd = _HELD.pop(os.path.abspath(folder), None)
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)


def _interrupt(signum: int, frame: object) -> None:
    raise TrainingInterrupted(signum)


def stop_after(seconds: float) -> threading.Timer:
    """SIGTERM this process after ``seconds`` (``--deadline``)."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    return timer


def run_workers(args: argparse.Namespace) -> int:
    """``args.workers`` processes of ``args.plan``, each claiming the next free unit; SIGTERM (the deadline's too)
    is passed on to each. Returns the worst exit status, a worker killed by a signal counting as 128 + the signal,
    except one that the SIGTERM passed on here killed before it set its own handler (it had not claimed a unit yet).
    A worker that failed gets one line on stderr: its signal, or its exit status and its log's last line (a failed
    commit's, say)."""
    command = [sys.executable, __file__, "--plan", args.plan, "--threads", str(args.threads)]
    command += (["--commit"] if args.commit else []) + ([] if args.limit is None else ["--limit", str(args.limit)])
    command += ["--allow-dirty"] if getattr(args, "allow_dirty", False) else []
    logs = PAPER / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers: list[subprocess.Popen] = []

    def pass_on(signum: int, frame: object) -> None:
        STOPPED.set()
        for w in workers:
            w.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        for k in range(1, args.workers + 1):
            with open(logs / f"{args.plan}.worker{k}.log", "a") as log:      # a later round appends
                log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}: worker {k} of {args.workers}\n")
                log.flush()
                workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
            print(f"worker {k}: pid {workers[-1].pid}, log {logs / f'{args.plan}.worker{k}.log'}", flush=True)
            time.sleep(1.0)                                 # staggered: each claims its own first unit
        codes = [w.wait() for w in workers]
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"workers finished: exit statuses {codes}", flush=True)
    statuses = []
    for k, (worker, code) in enumerate(zip(workers, codes), 1):
        log = logs / f"{args.plan}.worker{k}.log"
        if code > 0:
            print(f"worker {k} (pid {worker.pid}) exited with status {code}; its log ({log}) ends: {last_line(log)}",
                  file=sys.stderr, flush=True)
        if code >= 0:
            statuses.append(code)
            continue
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        passed_on = -code == signal.SIGTERM and STOPPED.is_set()
        statuses.append(0 if passed_on else 128 - code)
        print(f"worker {k} (pid {worker.pid}) died of {name}" + (", passed on here, before it could stop cleanly"
              if passed_on else f": exit status {128 - code}") + f"; its log: {log}",
              file=sys.stdout if passed_on else sys.stderr, flush=True)
    return max(statuses)


def last_line(path: Path) -> str:
    """The last non-empty line of the file ``path`` (its last 4 KB read), or what kept it from being read."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError as err:
        return f"(unreadable: {err})"
    return lines[-1] if lines else "(empty)"


STOPPED = threading.Event()
"""Set when SIGTERM reached ``run_workers``: no further round or plan starts."""


def run_plans_with_workers(args: argparse.Namespace) -> int:
    """``args.plans`` in order, each finished before the next starts: rounds of ``run_workers`` while a round
    publishes something (a worker skips a unit whose pretraining another is running; the next round takes it).
    Stops at a plan that is not ready (2), a failing round, a round that published nothing, or SIGTERM. With
    ``--commit``, a plan's records left uncommitted are committed first (CommitFailed when that fails)."""
    profile = get_profile("paper")
    for plan in args.plans:
        while not STOPPED.is_set():
            try:
                if args.commit:
                    commit_left_over(PLANS[plan](profile)[:args.limit], profile)
                left = pending(plan, profile, args.limit)
            except NotReady as waiting:
                print(f"paper_runs.py --plan {plan}: not ready: {waiting}", file=sys.stderr, flush=True)
                return 2
            if not left:
                print(f"plan {plan}: every unit published", flush=True)
                break
            print(f"plan {plan}: {len(left)} unit(s) to run", flush=True)
            code = run_workers(argparse.Namespace(**{**vars(args), "plan": plan}))
            if code or STOPPED.is_set() or len(pending(plan, profile, args.limit)) == len(left):
                return code
    return 0


def uncommitted_code() -> list[str]:
    """The tracked files with uncommitted changes in the tree this process's code was imported from, where the
    records it writes will name a '+dirty' commit (``records.CODE_COMMIT``); [] where they name a clean one (or a
    copied tree's, ``SEQREC_GIT_COMMIT``). The code this runs first (the library, the scripts), then the rest."""
    if not (records.CODE_COMMIT or "").endswith("+dirty"):
        return []
    changed = records.modified_files() or ["(committed since this process started)"]
    return sorted(changed, key=lambda name: not name.startswith(("seqrec_lib/", "scripts/", "pyproject.toml")))


def main(argv: list[str] | None = None) -> int:
    fast_path_or_reexec(argv)                               # MKL's Intel path on AMD CPUs (seqrec_lib.blas)
    parser = argparse.ArgumentParser(prog="python scripts/paper_runs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", dest="plans", nargs="+", choices=sorted(PLANS), required=True,
                        help="one or more plans, run in order (each to its end before the next)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--commit", action="store_true", help="git-commit each record as soon as it exists")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="with --commit: run even when tracked files have uncommitted changes (the records "
                             "then name a '+dirty' commit)")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many units")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the plan (default 1)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="stop cleanly after this many seconds (finished epochs kept for the next start)")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.deadline is not None and args.deadline <= 0):
        parser.error(f"--workers must be ≥ 1 and --deadline > 0, got {args.workers} and {args.deadline}")
    if args.commit and not args.allow_dirty and (changed := uncommitted_code()):
        named = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more (git status)" if len(changed) > 10 else "")
        print(f"paper_runs.py: --commit refused: the code runs from a modified tree ({records.CODE_COMMIT}; "
              f"uncommitted: {named}), so its records would name a '+dirty' commit; commit or revert those files "
              f"first, or pass --allow-dirty", file=sys.stderr, flush=True)
        return 2
    if args.deadline is not None:
        stop_after(args.deadline)
    try:
        if args.workers > 1:
            return run_plans_with_workers(args)
        signal.signal(signal.SIGTERM, _interrupt)
        for args.plan in args.plans:
            run_plan(args)
    except NotReady as waiting:
        print(f"paper_runs.py --plan {getattr(args, 'plan', ' '.join(args.plans))}: not ready: {waiting}",
              file=sys.stderr)
        return 2
    except CommitFailed as failed:
        print(f"paper_runs.py: {failed}; the record stays, and the next start with --commit commits it",
              file=sys.stderr, flush=True)
        return 1
    except TrainingInterrupted as stop:
        kept = (f"{stop.checkpoint} keeps {stop.epochs_saved} finished epoch(s)" if stop.checkpoint and
                stop.epochs_saved else "no unit had a finished epoch to keep")
        print(f"stopped by {signal.Signals(stop.signum).name}: {kept}; a later start resumes", flush=True)
    return 0


def run_plan(args: argparse.Namespace) -> None:
    """Train ``args.plan``'s unfinished, unclaimed units in order, publishing (and committing) each record. With
    ``--commit``, records an earlier start left uncommitted are committed first, and a failed commit raises
    CommitFailed (no further unit starts)."""
    torch.set_num_threads(args.threads)
    profile = get_profile("paper")
    specs = PLANS[args.plan](profile)[:args.limit]
    if args.commit:
        commit_left_over(specs, profile)
    for i, spec in enumerate(specs, 1):
        target = published(spec, profile)
        name = f"{spec.label} on {spec.dataset} ({target.stem})"
        if target.exists():
            print(f"[{i}/{len(specs)}] done already: {name}", flush=True)
            continue
        # the unit's folder and those of the pretrainings it would train (FAME's SASRec-CE, unless finished)
        folders = [run_dir(s, profile, PAPER / "runs") for s in prerequisites(spec)]
        folders = [f for f in folders if not (f / "result.json").exists()] + [run_dir(spec, profile, PAPER / "runs")]
        claimed = []
        for folder in folders:
            if not claim(folder):
                break
            claimed.append(folder)
        if len(claimed) < len(folders):
            release(claimed)
            print(f"[{i}/{len(specs)}] another process is running {name} or its pretraining", flush=True)
            continue
        print(f"[{i}/{len(specs)}] running {name}", flush=True)
        start = time.perf_counter()
        try:
            record = run(spec, profile, PAPER / "runs")
        finally:
            release(claimed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(record["run_dir"]) / "result.json", target)
        test = record["metrics"]["test"]["full"]
        sampled = record["metrics"]["test"].get("sampled")
        also = "" if sampled is None else f"; sampled NDCG@10 {sampled['NDCG@10']:.4f}"
        print(f"[{i}/{len(specs)}] finished in {time.perf_counter() - start:.0f} s: best epoch {record['best_epoch']}"
              f" of {record['epochs_run']}, test NDCG@10 {test['NDCG@10']:.4f} HR@10 {test['HR@10']:.4f}{also}",
              flush=True)
        if args.commit:
            commit(target, record_message(name, record))


if __name__ == "__main__":
    sys.exit(main())
