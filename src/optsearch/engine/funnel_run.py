"""The funnel: a search's best rules re-scored where its own reward cannot flatter them.

A search ranks rules by one noisy reward at one seed, so the top of its leaderboard is biased upward (the winner's
curse), and a proxy task can be overfitted; Lion's authors answered with a funnel of larger validation tasks.
Stage 2 re-evaluates the top `top` rules of the search on the search's own task and settings over `seeds` fresh
seeds; stage 3 takes the best `finalists` of those to held-out tasks of other families over `transfer_seeds`
seeds. Every stage trains the same hand-designed baselines (SGD, momentum, Adam, RMSProp, and any given) on the
same learning-rate grid (extended a decade while a rule's best lr is at its edge), seeds and budget, and ranks per
task with a paired test against the best baseline.

Each result is one row of the db's `evaluations` table, written as it finishes; a rerun skips the rows present,
so a funnel stopped by Ctrl-C or kill -9 resumes where it stopped and never computes a result twice.
"""


from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from optsearch.dsl import Rule
from optsearch.engine.executors import (
    EvalJob,
    Executor,
    check_executor,
    finished_cleanly,
    job_evaluations,
    run_job,
    start_executor,
)
from optsearch.engine.funnel_analysis import FunnelResult, analyze
from optsearch.engine.funnel_plan import FUNNEL_BASELINES, META_KEY, PROXY, FunnelConfig, Stage, read_plan
from optsearch.engine.store import Store, StoredEvaluation
from optsearch.tasks.registry import get_task
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import SettingsError


@dataclass
class FunnelProgress:
    stage: str
    done: int
    total: int
    computed: int


def funnel(db: str | Path, top: int = 20, seeds: int = 10, finalists: int = 10, tasks: Sequence[str] | None = None,
           transfer_seeds: int = 3, steps: int | Mapping[str, int] | None = None, lrs: Sequence[float] | None = None,
           baselines: Sequence[str] = FUNNEL_BASELINES, workers: int = 1, executor: str | Executor = "inline",
           address: str | None = None, on_progress: Callable[[FunnelProgress], None] | None = None) -> FunnelResult:
    """Re-score the search in `db`: stage 2 on its task over `seeds` fresh seeds, stage 3 on `tasks` over
    `transfer_seeds` (see `FunnelConfig`), baselines alongside; returns the per-task rankings.

    Runs on the search's executors (`workers`, `executor`, `address` as in `search`). Takes the db's writer lock,
    so it runs after the search, not beside it. Every argument and the db are checked before anything is written:
    bad input raises a ValueError naming it. Interrupted (Ctrl-C), it returns with `stopped="interrupted"` and
    what was finished is kept; run it again to go on.
    """
    config = FunnelConfig(top, seeds, finalists, None if tasks is None else tuple(tasks), transfer_seeds,
                          dict(steps) if isinstance(steps, Mapping) else steps,
                          None if lrs is None else tuple(lrs), tuple(baselines))
    plan = read_plan(db, config)
    check_executor(executor, workers, plan.proxy.settings, address)
    for stage in plan.transfer:
        task = get_task(stage.task)
        if not task.data_present():
            raise SettingsError(f"tasks: the data of {stage.task} is not on this machine (source: {task.source})")
    store: Store | None = None
    ex: Executor | None = None
    try:
        store = Store(db)
        ex = start_executor(executor, workers, address, plan.proxy.settings)  # a failed start writes no plan
        store.set_meta(META_KEY, plan.to_json())
        runner = _Runner(store, ex, on_progress)
        stopped = runner.run([(plan.proxy, plan.entrants(plan.candidates))])
        if stopped == "done":
            finals = analyze(plan, list(runner.rows.values())).finalists
            stopped = runner.run([(stage, plan.entrants(finals)) for stage in plan.transfer])
        result = analyze(plan, list(runner.rows.values()))
        result.computed, result.reused, result.stopped = runner.computed, runner.reused, stopped
        return result
    finally:
        if ex is not None and isinstance(executor, str):
            ex.close()
        if store is not None:
            store.close()


@dataclass
class _Job:
    stage: Stage
    seed: int
    rules: list[Rule]


class _Runner:
    """Trains the rows a stage lacks, a few jobs in flight at a time, storing each result as its job finishes."""

    def __init__(self, store: Store, ex: Executor, on_progress: Callable[[FunnelProgress], None] | None):
        self.store, self.ex = store, ex
        self.on_progress = on_progress or (lambda progress: None)
        self.rows = {row.key: row for row in store.evaluations()}
        self.computed = self.reused = 0

    def run(self, stages: list[tuple[Stage, list[tuple[Rule, str | None]]]]) -> str:
        """Train every missing (rule, seed) of `stages`; "done", or "interrupted" by Ctrl-C."""
        jobs: deque[_Job] = deque()
        total = 0
        for stage, rules in stages:
            stacked = get_task(stage.task).stacked
            for seed in stage.seeds:
                missing = [r for r, _ in rules if self._missing(stage, seed, r)]
                total += len(rules)
                self.reused += len(rules) - len(missing)
                n = min(self.ex.workers, len(missing)) if stacked else len(missing)  # stacked: a population
                jobs.extend(_Job(stage, seed, missing[i::n]) for i in range(n))
        progress = FunnelProgress(stages[0][0].name if stages else PROXY, total - sum(len(j.rules) for j in jobs),
                                  total, 0)
        self.on_progress(progress)
        pending: dict[cf.Future, _Job] = {}
        try:
            while jobs or pending:
                while jobs and len(pending) < 2 * self.ex.workers:  # the workers never idle, and little is lost
                    job = jobs.popleft()
                    pending[self.ex.submit(run_job, EvalJob.of(job.rules, job.stage.settings.replace(
                        seed=job.seed)))] = job
                for future in cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)[0]:
                    self._finish(pending.pop(future), future, progress)
                    self.on_progress(progress)
        except KeyboardInterrupt:
            for future, job in pending.items():
                if finished_cleanly(future):
                    self._finish(job, future, progress)
                else:
                    future.cancel()
            return "interrupted"
        return "done"

    def _finish(self, job: _Job, future: cf.Future, progress: FunnelProgress) -> None:
        for rule, ev in zip(job.rules, job_evaluations(future, job.rules, job.stage.task), strict=True):
            self._store(job, rule, ev)
        progress.done += len(job.rules)
        progress.computed += len(job.rules)

    def _missing(self, stage: Stage, seed: int, rule: Rule) -> bool:
        row = self.rows.get(stage.row_key(rule, seed))
        return row is None or row.evaluation.status == Status.FAILED

    def _store(self, job: _Job, rule: Rule, ev: Evaluation) -> None:
        row = StoredEvaluation(rule.fingerprint, str(rule), job.stage.name, job.stage.task, job.seed, job.stage.key,
                               ev)
        self.store.add_evaluation(row)
        self.rows[row.key] = row
        self.computed += 1
