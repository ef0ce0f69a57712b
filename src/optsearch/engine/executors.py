"""Where evaluations run. The driver only sees `submit(job) -> Future` and `close()`, so a backend
(inline, a local process pool, Ray) is a small class and the driver never changes.

A job is a picklable `EvalJob`: rules as token lists plus the evaluation settings, so workers rebuild
the rules themselves and nothing but plain data crosses a process boundary.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from optsearch.dsl import Rule
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import Settings, SettingsError, check_choice, check_positive_int
from optsearch.tasks.suite import Reference, Suite, SuiteEvaluation


@dataclass(frozen=True)
class EvalJob:
    """A batch of rules evaluated together (one batched population on the worker): on one task's `settings`, or
    on a `Suite` normalized to its tasks' `references` (computed once by the driver, so workers never retrain
    the baselines)."""

    tokens: tuple[tuple[str, ...], ...]
    settings: Settings | Suite
    references: tuple[Reference, ...] = ()

    @classmethod
    def of(cls, rules: Sequence[Rule], settings: Settings | Suite, references: Sequence[Reference] = ()) -> EvalJob:
        return cls(tuple(r.tokens for r in rules), settings, tuple(references))


def run_job(job: EvalJob) -> list[dict[str, Any]]:
    """Evaluate a job; one dict per rule (Evaluation.to_dict(), or SuiteEvaluation's). Runs on the worker."""
    from optsearch.tasks import evaluate_settings
    from optsearch.tasks.suite import evaluate_suite

    rules = [Rule.from_tokens(t) for t in job.tokens]
    if isinstance(job.settings, Suite):
        refs = {r.task: r for r in job.references}
        return [ev.to_dict() for ev in evaluate_suite(rules, job.settings, refs)]
    return [ev.to_dict() for ev in evaluate_settings(rules, job.settings)]


def job_evaluations(future: cf.Future, rules: Sequence[Rule], task: str) -> list[Evaluation | SuiteEvaluation]:
    """The evaluations of a finished job, one per rule (a worker sends their `to_dict()`s); a job whose
    evaluation broke gives `failed` ones, so a result is recorded, never dropped."""
    try:
        return [r if isinstance(r, Evaluation | SuiteEvaluation)
                else SuiteEvaluation.from_dict(r) if "scores" in r else Evaluation.from_dict(r)
                for r in future.result()]
    except Exception as exc:  # noqa: BLE001 - a failed batch is recorded, never dropped
        return [Evaluation(str(rule), task, 0.0, Status.FAILED, f"{type(exc).__name__}: {exc}") for rule in rules]


def finished_cleanly(future: cf.Future) -> bool:
    """Whether a job's result is in hand: after an interrupt such jobs are stored (a finished result is never
    lost), while jobs the interrupt broke are left for the resume to run again, not stored as failed."""
    return future.done() and not future.cancelled() and future.exception() is None


class Executor(Protocol):
    workers: int

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs each job at once in this process: the simplest, and what tests and objectives use."""

    workers = 1

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(arg))
        except BaseException as exc:  # noqa: BLE001 - the driver decides what a failure means
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


def _start_worker(parent: int) -> None:
    """Pool initializer: one torch thread, and a watch that ends the worker once `parent` is gone."""
    torch.set_num_threads(1)
    threading.Thread(target=exit_when_orphaned, args=(parent,), daemon=True, name="optsearch-orphan-watch").start()


def exit_when_orphaned(parent: int, every: float = 0.2) -> None:
    """Exit this process as soon as its parent `parent` has died (it is then re-parented and getppid changes).

    A killed search (kill -9, OOM killer) cannot shut its pool down, and a pool worker blocked on its job queue
    never notices on its own: it and multiprocessing's resource tracker would run forever. Polling getppid is
    portable across POSIX systems, unlike Linux's PR_SET_PDEATHSIG.
    """
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


class ProcessExecutor:
    """A local process pool, one torch thread per worker (2 × 1 thread beat 1 × 2 here by ~1.35×).

    Its workers exit by themselves within a fraction of a second if this process dies.
    """

    def __init__(self, workers: int = 2):
        check_positive_int("workers", workers)
        self.workers = workers
        self.pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                                           initargs=(os.getpid(),))
        self.unfinished: set[cf.Future] = set()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        future = self.pool.submit(fn, arg)
        self.unfinished.add(future)
        future.add_done_callback(self.unfinished.discard)
        return future

    def close(self) -> None:
        """Shut the pool down. Jobs still running (the driver was interrupted and will not wait for them) are
        ended by terminating their workers: a SIGTERM'd search must not wait minutes for an evaluation."""
        if self.unfinished:
            for process in list(self.pool._processes.values()):  # noqa: SLF001 - public only from Python 3.14
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


EXECUTORS = ("inline", "process", "ray")


def check_executor(executor: str | Executor, workers: int, settings: Settings | None,
                   address: str | None = None) -> None:
    """Refuse an unknown executor name, a bad worker count, a Ray `address` nothing answers at (within seconds, where
    ray.init would retry for minutes) or (off Ray, whose workers may have devices and data this machine lacks) a
    device that is not here or task data that is missing or broken: before a db is opened or a worker started."""
    if isinstance(executor, str):
        check_choice("executor", executor, EXECUTORS)
        check_positive_int("workers", workers)
        if address is not None and executor != "ray":
            raise SettingsError(f"address: got {address!r} for the {executor} executor; allowed: an address only "
                                "with executor ray")
        if executor == "ray" and address:
            from optsearch.engine.ray_executor import check_address

            check_address(address)
        if settings is not None and executor != "ray":
            settings.check_device()
            settings.check_data()


def start_executor(executor: str | Executor, workers: int, address: str | None,
                   settings: Settings | None) -> Executor:
    """`executor` itself when it is one (its owner closes it), else a new one of that name (the caller closes it);
    Ray workers get a GPU each when `settings` train on CUDA."""
    if not isinstance(executor, str):
        return executor
    gpus = 1 if settings is not None and settings.device.startswith("cuda") else 0
    return make_executor(executor, workers, **(dict(address=address, gpus_per_worker=gpus)
                                               if executor == "ray" else {}))


def make_executor(name: str, workers: int = 1, **options: Any) -> Executor:
    """`options` go to the Ray backend (address, gpus_per_worker, max_retries, temp_dir)."""
    if name == "inline":
        return InlineExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        from optsearch.engine.ray_executor import RayExecutor

        return RayExecutor(workers, **options)
    raise ValueError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}")
