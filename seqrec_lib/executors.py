"""Where a sweep's runs execute: one after the other in this process (``local``) or as Ray tasks (``ray``).

An executor receives a list of ``Job``s, each naming the earlier jobs it needs (FAME fine-tunes need their
SASRec-CE pretraining), and a picklable ``work`` function; it calls ``work(job.payload)`` for every job once
the jobs it needs have succeeded, and reports an ``Outcome`` per job as each ends. A job that raises is
reported with its traceback and the others go on; a job whose needed job failed is not started and is
reported as blocked by it.

- ``LocalExecutor`` (``"local"``, the default): sequential, in job order, nothing to install.
- ``RayExecutor`` (``"ray"``, ``pip install -e ".[distributed]"``): one Ray task per job, the jobs it needs
  passed as object refs (Ray starts it when they are done), with the job's CPUs and GPU fraction as its
  resource request. Connects to the running Ray of this process, else to ``address`` (``"auto"``: the
  cluster started on this machine with ``ray start``; ``"ray://host:10001"``: a remote one), else starts a
  local Ray. Ray retries a task whose worker process died; Ctrl-C cancels the tasks not yet finished.
"""

from __future__ import annotations

import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One unit of a sweep: ``work(payload)``, started after the jobs ``needs`` (indices of earlier jobs)
    have succeeded, with ``cpus`` CPUs and ``gpus`` GPUs (a fraction shares one GPU) reserved for it where
    the executor schedules resources."""

    payload: Any
    needs: tuple[int, ...] = ()
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What became of one job: its ``result``; or ``error``, the traceback of what it raised; or
    ``blocked_by``, the index of a needed job that failed (then it was not started)."""

    result: Any = None
    error: str | None = None
    blocked_by: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.blocked_by is None


def run_job(work: Callable[[Any], Any], payload: Any, needs: tuple[int, ...], *needed: Outcome) -> Outcome:
    """``work(payload)`` as an ``Outcome``, unless one of the ``needed`` outcomes (of jobs ``needs``) failed."""
    for index, outcome in zip(needs, needed):
        if not outcome.ok:
            return Outcome(blocked_by=index)
    try:
        return Outcome(result=work(payload))
    except Exception:
        return Outcome(error=traceback.format_exc())


OnDone = Callable[[int, Outcome], None]


def _check(jobs: Sequence[Job]) -> None:
    for i, job in enumerate(jobs):
        if any(not 0 <= n < i for n in job.needs):
            raise ValueError(f"job {i} needs {job.needs}: a job can only need earlier jobs")


class Executor(ABC):
    """Runs a list of jobs; see the module's docstring."""

    name: str
    reserves_gpus: bool = False    # True: a job gets only the GPUs it asks for (a run asking none uses the CPU)

    @abstractmethod
    def execute(self, work: Callable[[Any], Any], jobs: Sequence[Job], on_done: OnDone | None = None) -> list[Outcome]:
        """Run every job, each after the jobs it needs, and return their outcomes in job order; ``on_done``
        is called (in this thread) with each job's index and outcome as it ends. ``work`` must be picklable
        (a module-level function or a ``functools.partial`` of one) for executors that run it elsewhere."""


class LocalExecutor(Executor):
    """One job after the other, in job order, in this process."""

    name = "local"

    def execute(self, work: Callable[[Any], Any], jobs: Sequence[Job], on_done: OnDone | None = None) -> list[Outcome]:
        _check(jobs)
        outcomes: list[Outcome] = []
        for i, job in enumerate(jobs):
            outcomes.append(run_job(work, job.payload, job.needs, *(outcomes[n] for n in job.needs)))
            if on_done is not None:
                on_done(i, outcomes[i])
        return outcomes


class RayExecutor(Executor):
    """One Ray task per job; the jobs it needs are passed to it as object refs.

    ``address``: None starts a local Ray unless this process is already connected (``ray.init`` before);
    ``"auto"`` or ``"ray://host:port"`` connects to that cluster. ``init_kwargs`` go to ``ray.init`` (e.g.
    ``num_cpus``, ``num_gpus`` for a local Ray). Where the cluster has no GPU at all, GPU requests are
    dropped (with a warning) rather than waiting forever. Run folders are written by the workers: on a
    cluster of several machines the results root must be a path every node shares.
    """

    name = "ray"
    reserves_gpus = True

    def __init__(self, address: str | None = None, **init_kwargs: Any) -> None:
        self.address = address
        self.init_kwargs = init_kwargs

    def connect(self) -> Any:
        """The ``ray`` module, connected (started locally when there is no address)."""
        try:
            import ray
        except ImportError:
            raise ImportError('the "ray" executor needs Ray: pip install -e ".[distributed]" '
                              '(or pip install ray)') from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False}     # each run's output goes to its run folder
            if self.address is None:
                kwargs["include_dashboard"] = False
            ray.init(address=self.address, **{**kwargs, **self.init_kwargs})
        return ray

    def execute(self, work: Callable[[Any], Any], jobs: Sequence[Job], on_done: OnDone | None = None) -> list[Outcome]:
        _check(jobs)
        if not jobs:
            return []
        ray = self.connect()
        task = _remote_run_job(ray)
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        if not has_gpus and any(job.gpus for job in jobs):
            warnings.warn("the Ray cluster has no GPU: the runs' GPU requests are dropped and they train on CPUs",
                          stacklevel=3)
        refs = []
        for job in jobs:
            options = {"num_cpus": job.cpus, "num_gpus": job.gpus if has_gpus else 0}
            refs.append(task.options(**options).remote(work, job.payload, job.needs, *(refs[n] for n in job.needs)))
        index = {ref: i for i, ref in enumerate(refs)}
        outcomes: list[Outcome | None] = [None] * len(jobs)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    i = index[ref]
                    try:
                        outcomes[i] = ray.get(ref)
                    except Exception as error:   # Ray's own failures: a worker lost past its retries, a cancel
                        failed = [n for n in jobs[i].needs if not self._succeeded(ray, refs[n])]
                        outcomes[i] = (Outcome(blocked_by=failed[0]) if failed else
                                       Outcome(error="".join(traceback.format_exception_only(type(error), error))))
                    if on_done is not None:
                        on_done(i, outcomes[i])
        except BaseException:                    # Ctrl-C (or a failing on_done): stop what is still queued
            for ref in pending:
                ray.cancel(ref)
            raise
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _succeeded(ray: Any, ref: Any) -> bool:
        """Did the (finished) task of ``ref`` return a successful outcome?"""
        try:
            return ray.get(ref).ok
        except Exception:
            return False


_REMOTE: dict[str, Any] = {}


def _remote_run_job(ray: Any) -> Any:
    """``run_job`` as a Ray remote function, made once per process."""
    if "run_job" not in _REMOTE:
        _REMOTE["run_job"] = ray.remote(run_job)
    return _REMOTE["run_job"]


def get_executor(executor: str | Executor = "local", address: str | None = None) -> Executor:
    """The executor called ``executor`` ("local" or "ray", the latter connecting to ``address``), or
    ``executor`` itself when it already is one. An unknown name raises ValueError listing the known ones."""
    if isinstance(executor, Executor):
        if address is not None:
            raise ValueError("address is only for an executor given by name (\"ray\")")
        return executor
    if executor == "local":
        if address is not None:
            raise ValueError(f"the local executor runs in this process; address={address!r} is for \"ray\"")
        return LocalExecutor()
    if executor == "ray":
        return RayExecutor(address)
    raise ValueError(f"unknown executor {executor!r}; known executors: {', '.join(EXECUTORS)}")
