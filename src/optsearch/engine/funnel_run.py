"""The funnel: a search's best rules re-scored where its own reward cannot flatter them.

A search ranks rules by one noisy reward at one seed, so the top of its leaderboard is biased upward (the winner's
curse), and a proxy task can be overfitted; Lion's authors answered with a funnel of larger validation tasks.
Stage 2 re-evaluates the top `top` rules of the search on the search's own task and settings over `seeds` fresh
seeds (a suite search's on every task of its suite, a rule's score on a seed being its suite reward there); stage 3
takes the best `finalists` of those to held-out tasks of other families (at their own budgets by default), tunes
each rule's learning rate there on `tune_seeds` seeds (the grid extended a decade while a rule's best lr is at its
edge), then trains that rate alone on `score_seeds` fresh seeds, which alone score it: a rate chosen on some seeds
flatters its scores on them, and tuning is the costly part, so many seeds stay affordable.
Every stage trains the same hand-designed baselines (SGD, momentum, Adam, RMSProp, Adam and momentum with cosine
decay, and any given) and the paper's best rules for reference the same way, and ranks per task with a paired
test against the best baseline.

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
from optsearch.engine.funnel_analysis import FunnelResult, TaskTable, analyze
from optsearch.engine.funnel_plan import (
    FUNNEL_BASELINES,
    META_KEY,
    PROXY,
    REFERENCE_RULES,
    SCORE,
    Entrant,
    FunnelConfig,
    Stage,
    read_plan,
    row_key,
)
from optsearch.engine.store import Store, StoredEvaluation
from optsearch.tasks.registry import get_task
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import Settings, SettingsError


@dataclass
class FunnelProgress:
    stage: str
    done: int
    total: int
    computed: int


def funnel(db: str | Path, top: int = 20, seeds: int = 10, finalists: int = 10, tasks: Sequence[str] | None = None,
           tune_seeds: int = 3, score_seeds: int = 10, steps: int | Mapping[str, int] | None = None,
           lrs: Sequence[float] | None = None, baselines: Sequence[str] = FUNNEL_BASELINES,
           references: Sequence[str] = REFERENCE_RULES, also: Sequence[str] = (), workers: int = 1,
           executor: str | Executor = "inline",
           address: str | None = None, on_progress: Callable[[FunnelProgress], None] | None = None) -> FunnelResult:
    """Re-score the search in `db`: stage 2 on its task (or each task of its suite) over `seeds` fresh seeds,
    stage 3 on `tasks`, tuned on `tune_seeds` and scored on `score_seeds` others (see `FunnelConfig`), baselines
    and reference rules alongside, and the `also` rules (from elsewhere) as found rules that always reach stage 3;
    returns the per-task rankings.

    Runs on the search's executors (`workers`, `executor`, `address` as in `search`). Takes the db's writer lock,
    so it runs after the search, not beside it. Every argument and the db are checked before anything is written:
    bad input raises a ValueError naming it. Interrupted (Ctrl-C), it returns with `stopped="interrupted"` and
    what was finished is kept; run it again to go on.
    """
    config = FunnelConfig(top, seeds, finalists, None if tasks is None else tuple(tasks), tune_seeds, score_seeds,
                          dict(steps) if isinstance(steps, Mapping) else steps,
                          None if lrs is None else tuple(lrs), tuple(baselines), tuple(references), tuple(also))
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
        entrants = plan.entrants(plan.rescored)
        stopped = runner.run([b for stage in plan.proxies for b in _grid_batches(stage, entrants)])
        if stopped == "done":
            finals = analyze(plan, list(runner.rows.values())).finalists
            stopped = runner.run([b for stage in plan.transfer for b in _grid_batches(stage, plan.entrants(finals))])
        if stopped == "done":  # the tuning rows are all in: each rule's rate is chosen
            tuned = analyze(plan, list(runner.rows.values())).transfer
            stopped = runner.run([b for stage, table in zip(plan.transfer, tuned, strict=True)
                                  for b in _score_batches(stage, table)])
        result = analyze(plan, list(runner.rows.values()))
        result.computed, result.reused, result.stopped = runner.computed, runner.reused, stopped
        return result
    finally:
        if ex is not None and isinstance(executor, str):
            ex.close()
        if store is not None:
            store.close()


@dataclass
class _Batch:
    """Rules to train at `settings` on each of `seeds`, stored as rows of `stage`."""

    stage: str
    settings: Settings
    seeds: tuple[int, ...]
    rules: list[Rule]


def _grid_batches(stage: Stage, entrants: Sequence[Entrant]) -> list[_Batch]:
    return [_Batch(stage.name, stage.settings, stage.seeds, [e.rule for e in entrants])]


def _score_batches(stage: Stage, tuned: TaskTable) -> list[_Batch]:
    """Each tuned rule of a held-out task at its rate alone on the score seeds, rules of one rate together."""
    by_lr: dict[float, list[Rule]] = {}
    for e in tuned.entries:
        if e.lr is not None:
            by_lr.setdefault(e.lr, []).append(Rule.from_tokens(e.tokens))
    return [_Batch(SCORE, stage.score_settings(lr), stage.score_seeds, rules) for lr, rules in by_lr.items()]


@dataclass
class _Job:
    stage: str
    settings: Settings  # its seed set
    rules: list[Rule]

    def row_key(self, rule: Rule) -> tuple[str, str, str, int, str]:
        return row_key(self.stage, self.settings, rule, self.settings.seed)


class _Runner:
    """Trains the rows a stage lacks, a few jobs in flight at a time, storing each result as its job finishes."""

    def __init__(self, store: Store, ex: Executor, on_progress: Callable[[FunnelProgress], None] | None):
        self.store, self.ex = store, ex
        self.on_progress = on_progress or (lambda progress: None)
        self.rows = {row.key: row for row in store.evaluations()}
        self.computed = self.reused = 0

    def run(self, batches: list[_Batch]) -> str:
        """Train every missing (rule, seed) of `batches`; "done", or "interrupted" by Ctrl-C."""
        jobs: deque[_Job] = deque()
        total = 0
        for batch in batches:
            stacked = get_task(batch.settings.task).stacked
            for seed in batch.seeds:
                settings = batch.settings.replace(seed=seed)
                missing = [r for r in batch.rules if self._missing(row_key(batch.stage, settings, r, seed))]
                total += len(batch.rules)
                self.reused += len(batch.rules) - len(missing)
                n = min(self.ex.workers, len(missing)) if stacked else len(missing)  # stacked: a population
                jobs.extend(_Job(batch.stage, settings, missing[i::n]) for i in range(n))
        progress = FunnelProgress(batches[0].stage if batches else PROXY, total - sum(len(j.rules) for j in jobs),
                                  total, 0)
        self.on_progress(progress)
        pending: dict[cf.Future, _Job] = {}
        try:
            while jobs or pending:
                while jobs and len(pending) < 2 * self.ex.workers:  # the workers never idle, and little is lost
                    job = jobs.popleft()
                    pending[self.ex.submit(run_job, EvalJob.of(job.rules, job.settings))] = job
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
        for rule, ev in zip(job.rules, job_evaluations(future, job.rules, job.settings.task), strict=True):
            self._store(job, rule, ev)
        progress.done += len(job.rules)
        progress.computed += len(job.rules)

    def _missing(self, key: tuple[str, str, str, int, str]) -> bool:
        row = self.rows.get(key)
        return row is None or row.evaluation.status == Status.FAILED

    def _store(self, job: _Job, rule: Rule, ev: Evaluation) -> None:
        _, stage, task, seed, key = job.row_key(rule)
        row = StoredEvaluation(rule.fingerprint, str(rule), stage, task, seed, key, ev)
        self.store.add_evaluation(row)
        self.rows[row.key] = row
        self.computed += 1
