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
import hashlib
import json
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from optsearch.dsl import Rule
from optsearch.engine.driver import SearchConfig
from optsearch.engine.executors import (
    EvalJob,
    Executor,
    check_executor,
    finished_cleanly,
    job_evaluations,
    run_job,
    start_executor,
)
from optsearch.engine.store import BASELINE, Store, StoredEvaluation, StoreError, Trial
from optsearch.optim.zoo import resolve
from optsearch.tasks.registry import get_task
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import MAX_SEED, Settings, SettingsError, check_int_in, check_positive_int

PROXY, TRANSFER = "proxy", "transfer"
"""The stages of a stored row: 2 (the search's task over fresh seeds) and 3 (held-out tasks)."""
FUNNEL_BASELINES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop")
"""The hand-designed optimizers every stage compares against (zoo names; `momentum` is the rule `m`)."""
DEFAULT_TASKS: tuple[str, ...] = ("fashion_mnist_conv", "kjv_char_lstm")
"""Stage 3's held-out tasks: a ConvNet and a language model, other families than the MLP proxies."""
ALPHA = 0.05
"""A rule beats (loses to) the best baseline when its Holm-adjusted p is below this and its gap is positive
(negative); otherwise it ties."""
META_KEY = "funnel"
MAX_SEEDS = 10_000


@dataclass(frozen=True)
class FunnelConfig:
    """What a funnel is asked to do. `tasks` None: DEFAULT_TASKS except the search's own. `steps` and `lrs` apply
    to stage 3 (stage 2 runs the search's settings unchanged): one step count for every task or one per task
    name; None keeps each task's search budget and the search's learning-rate grid."""

    top: int = 20
    seeds: int = 10
    finalists: int = 10
    tasks: tuple[str, ...] | None = None
    transfer_seeds: int = 3
    steps: int | Mapping[str, int] | None = None
    lrs: tuple[float, ...] | None = None
    baselines: tuple[str, ...] = FUNNEL_BASELINES

    def __post_init__(self) -> None:
        check_positive_int("top", self.top)
        check_positive_int("finalists", self.finalists)
        check_int_in("seeds", self.seeds, 2, MAX_SEEDS)  # a paired test needs two seeds
        check_int_in("transfer_seeds", self.transfer_seeds, 2, MAX_SEEDS)
        if self.tasks is not None and not self.tasks:
            raise SettingsError("tasks: got none; allowed: one or more task names (see `optsearch tasks`)")
        if not self.baselines:
            raise SettingsError("baselines: got none; allowed: zoo names or rule texts, e.g. sgd, adam")
        if isinstance(self.steps, Mapping):
            for task, n in self.steps.items():
                check_positive_int(f"steps for {task}", n)
        elif self.steps is not None:
            check_positive_int("steps", self.steps)

    def to_json(self) -> dict[str, Any]:
        steps = dict(self.steps) if isinstance(self.steps, Mapping) else self.steps
        return {"top": self.top, "seeds": self.seeds, "finalists": self.finalists,
                "tasks": None if self.tasks is None else list(self.tasks), "transfer_seeds": self.transfer_seeds,
                "steps": steps, "lrs": None if self.lrs is None else list(self.lrs),
                "baselines": list(self.baselines)}


@dataclass(frozen=True)
class Stage:
    """Where a stage trains: `settings` (their seed aside) at each of `seeds`."""

    name: str
    settings: Settings
    seeds: tuple[int, ...]

    @property
    def task(self) -> str:
        return self.settings.task

    @property
    def key(self) -> str:
        return settings_key(self.settings)

    def row_key(self, rule: Rule, seed: int) -> tuple[str, str, str, int, str]:
        """The `StoredEvaluation.key` of `rule`'s row at `seed` in this stage."""
        return rule.fingerprint, self.name, self.task, seed, self.key


@dataclass
class Plan:
    """What one funnel trains: the proxy stage, the transfer stages, the baselines (display name -> rule), the
    search's top rules and their stage-1 rewards (fingerprint -> reward). Stored in the db's meta, so a report
    shows exactly what the funnel did even if the search goes on."""

    config: FunnelConfig
    proxy: Stage
    transfer: list[Stage]
    baselines: dict[str, Rule]
    candidates: list[Rule]
    stage1: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "proxy": _stage_json(self.proxy),
                "transfer": [_stage_json(s) for s in self.transfer],
                "baselines": {name: list(r.tokens) for name, r in self.baselines.items()},
                "candidates": [list(r.tokens) for r in self.candidates], "stage1": self.stage1}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        c = d["config"]
        config = FunnelConfig(c["top"], c["seeds"], c["finalists"], None if c["tasks"] is None else tuple(c["tasks"]),
                              c["transfer_seeds"], c["steps"], None if c["lrs"] is None else tuple(c["lrs"]),
                              tuple(c["baselines"]))
        return cls(config, _stage(d["proxy"]), [_stage(s) for s in d["transfer"]],
                   {name: Rule.from_tokens(t) for name, t in d["baselines"].items()},
                   [Rule.from_tokens(t) for t in d["candidates"]], d["stage1"])


@dataclass
class Entry:
    """One rule on one task over the seeds: its learning rate (best mean validation score over the seeds), its
    test score there per seed, and how it compares with the best baseline (`gap` = mean − that baseline's mean,
    a paired t-test over the common seeds, Holm-adjusted over the task's rules)."""

    rule: str
    fingerprint: str
    tokens: tuple[str, ...]
    baseline: str | None  # the display name of a baseline; None for a found rule
    lr: float | None
    scores: dict[int, float]
    gap: float = math.nan
    p: float = math.nan
    p_adjusted: float = math.nan
    verdict: str = ""  # beats | ties | loses (found rules); best baseline | baseline; incomplete

    @property
    def name(self) -> str:
        return self.baseline or self.rule

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.scores.values()))) if self.scores else math.nan

    @property
    def sem(self) -> float:
        """Standard error of the mean over seeds (NaN with fewer than two)."""
        n = len(self.scores)
        return float(np.std(list(self.scores.values()), ddof=1) / math.sqrt(n)) if n > 1 else math.nan


@dataclass
class TaskTable:
    """The ranking on one task of one stage: found rules and baselines, best mean first."""

    stage: str
    task: str
    seeds: tuple[int, ...]
    entries: list[Entry]

    @property
    def best_baseline(self) -> Entry | None:
        return next((e for e in self.entries if e.verdict == "best baseline"), None)

    @property
    def found(self) -> list[Entry]:
        return [e for e in self.entries if e.baseline is None]


@dataclass
class Standing:
    """A rule's place over the held-out tasks: mean rank (1 = best; rules and baselines ranked together on each
    task) and its verdicts against each task's best baseline."""

    name: str
    baseline: bool
    mean_rank: float
    verdicts: dict[str, str]
    gaps: dict[str, float]

    def count(self, verdict: str) -> int:
        return sum(v == verdict for v in self.verdicts.values())


@dataclass
class FunnelResult:
    plan: Plan
    proxy: TaskTable
    transfer: list[TaskTable]
    leaderboard: list[Standing]
    finalists: list[Rule]  # the found rules stage 3 takes: the best of stage 2 scored on all its seeds
    computed: int = 0  # results trained by this call
    reused: int = 0  # results found in the db
    stopped: str = "done"  # done | interrupted

    @property
    def winners_curse(self) -> tuple[list[tuple[Entry, float]], float]:
        """(stage-2 entry, stage-1 reward) of each found rule scored in stage 2, and their Spearman correlation:
        how much of the search's ranking survives fresh seeds (NaN with fewer than three)."""
        pairs = [(e, self.plan.stage1[e.fingerprint]) for e in self.proxy.found
                 if e.scores and e.fingerprint in self.plan.stage1]
        return pairs, spearman([s1 for _, s1 in pairs], [e.mean for e, _ in pairs])

    @property
    def predictiveness(self) -> list[Prediction]:
        """For each held-out task, how well the cheap stages ranked the finalists scored there: the Spearman
        correlation of their stage-1 rewards, and of their stage-2 means, with their means on the task."""
        proxy = {e.fingerprint: e.mean for e in self.proxy.found if e.scores}
        out = []
        for table in self.transfer:
            found = [e for e in table.found if e.scores and e.fingerprint in proxy]
            means = [e.mean for e in found]
            out.append(Prediction(table.task, len(found),
                                  spearman([self.plan.stage1.get(e.fingerprint, math.nan) for e in found], means),
                                  spearman([proxy[e.fingerprint] for e in found], means)))
        return out


@dataclass(frozen=True)
class Prediction:
    """How well stage 1 (the search's reward) and stage 2 (fresh seeds on its task) ranked the finalists of one
    held-out task (`rules` of them scored there)."""

    task: str
    rules: int
    stage1: float
    stage2: float


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN with fewer than three pairs, a missing value, or a constant side."""
    if len(x) < 3 or any(math.isnan(v) for v in [*x, *y]) or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


@dataclass
class FunnelProgress:
    stage: str
    done: int
    total: int
    computed: int


def settings_key(settings: Settings) -> str:
    """What makes two results comparable, seed aside: task, lr grid, budget, precision (not where it ran)."""
    s = settings.resolved().to_json()
    for name in ("seed", "device", "data_dir"):
        s.pop(name)
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]


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
    check_executor(executor, workers, plan.proxy.settings)
    for stage in plan.transfer:
        task = get_task(stage.task)
        if not task.data_present():
            raise SettingsError(f"tasks: the data of {stage.task} is not on this machine (source: {task.source})")
    store: Store | None = None
    ex: Executor | None = None
    try:
        store = Store(db)
        store.set_meta(META_KEY, plan.to_json())
        ex = start_executor(executor, workers, address, plan.proxy.settings)
        runner = _Runner(store, ex, on_progress)
        stopped = runner.run([(plan.proxy, _rules(plan, plan.candidates))])
        if stopped == "done":
            finals = analyze(plan, list(runner.rows.values())).finalists
            stopped = runner.run([(stage, _rules(plan, finals)) for stage in plan.transfer])
        result = analyze(plan, list(runner.rows.values()))
        result.computed, result.reused, result.stopped = runner.computed, runner.reused, stopped
        return result
    finally:
        if ex is not None and isinstance(executor, str):
            ex.close()
        if store is not None:
            store.close()


def load_funnel(store: Store) -> FunnelResult | None:
    """The latest funnel of a store as its rows stand now (None if it never ran one): what the report shows."""
    stored = store.get_meta(META_KEY)
    if stored is None:
        return None
    plan = Plan.from_json(stored)
    return analyze(plan, store.evaluations())


def read_plan(db: str | Path, config: FunnelConfig) -> Plan:
    """The plan of a funnel on the search in `db`, read without writing (no lock: a search may still run)."""
    if Path(db).is_dir() or not Path(db).is_file():
        raise StoreError(f"db: no search at {db}; allowed: the SQLite file of a finished search")
    with Store(db, readonly=True) as store:
        stored = store.get_meta("config")
        trials = store.trials(order="reward")
    if stored is None:
        raise StoreError(f"db: {db} holds no search config; allowed: the db of a search on a task")
    settings = SearchConfig.from_json(stored).settings
    if settings is None:
        raise StoreError(f"db: {db} holds a search of an objective, which has no task to re-train on; "
                         "allowed: the db of a search on a task")
    return make_plan(config, settings, trials)


def make_plan(config: FunnelConfig, settings: Settings, trials: Sequence[Trial]) -> Plan:
    """Stage 2 on `settings` (the search's), stage 3 on the held-out tasks; candidates are the `top` best ok
    trials found by the search (trials best first), baselines and their equals excluded."""
    baselines: dict[str, Rule] = {}
    for name in config.baselines:
        rule = resolve(name)
        if rule.fingerprint not in {r.fingerprint for r in baselines.values()}:
            baselines[name] = rule
    taken = {r.fingerprint for r in baselines.values()}
    found = [t for t in trials if t.status == Status.OK and t.strategy != BASELINE and t.fingerprint not in taken]
    if not found:
        raise StoreError("db: the search has no rule that trained (status ok) to re-score yet")
    candidates = [Rule.from_tokens(t.tokens) for t in found[: config.top]]
    base = settings.seed + 1  # fresh seeds: the search's own seed chose the candidates
    if base + max(config.seeds, config.transfer_seeds) > MAX_SEED:
        raise SettingsError(f"seed: the search's seed {settings.seed} leaves no room for fresh seeds")
    tasks = config.tasks if config.tasks is not None else tuple(t for t in DEFAULT_TASKS if t != settings.task)
    per_task = config.steps if isinstance(config.steps, Mapping) else dict.fromkeys(tasks, config.steps)
    unknown = sorted(set(per_task) - set(tasks))
    if unknown:
        raise SettingsError(f"steps: given for {', '.join(unknown)}, which is not among the tasks "
                            f"{', '.join(tasks)}")
    # stage 3 extends the grid at its edges (as the search does): a baseline whose best lr is the grid's last is
    # not tuned, and a rule must not win because its scale suits the grid better than a baseline's does
    transfer = [Stage(TRANSFER, Settings(task, config.lrs or settings.lrs, per_task.get(task), None, 0,
                                         settings.device, None, settings.precision, extend_lrs=True),
                      tuple(range(base, base + config.transfer_seeds))) for task in dict.fromkeys(tasks)]
    # stage 2 repeats the search's settings at full fidelity, one seed per job (the funnel pairs seeds itself)
    proxy = Stage(PROXY, settings.replace(seed=0, seeds=None, fidelity="full"), tuple(range(base, base + config.seeds)))
    return Plan(config, proxy, transfer, baselines, candidates, {t.fingerprint: t.reward for t in found})


def _rules(plan: Plan, found: Sequence[Rule]) -> list[tuple[Rule, str | None]]:
    return [*((r, name) for name, r in plan.baselines.items()), *((r, None) for r in found)]


# --- running ---------------------------------------------------------------------------------------
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


# --- analysis --------------------------------------------------------------------------------------
def analyze(plan: Plan, rows: Sequence[StoredEvaluation]) -> FunnelResult:
    """The per-task rankings and the leaderboard of `plan` from the stored `rows` (complete or not)."""
    index = {row.key: row.evaluation for row in rows}
    proxy = _table(plan.proxy, _rules(plan, plan.candidates), index)
    finals = finalists_of(proxy, plan.config.finalists)
    transfer = [_table(stage, _rules(plan, finals), index) for stage in plan.transfer]
    return FunnelResult(plan, proxy, transfer, leaderboard(transfer), finals)


def finalists_of(proxy: TaskTable, m: int) -> list[Rule]:
    """The `m` found rules of stage 2 with the best mean score (only those scored on every seed)."""
    complete = [e for e in proxy.found if len(e.scores) == len(proxy.seeds)]
    return [Rule.from_tokens(e.tokens) for e in complete[:m]]


def _table(stage: Stage, rules: Sequence[tuple[Rule, str | None]], index: Mapping[tuple, Evaluation]) -> TaskTable:
    entries = []
    for rule, name in rules:
        evals = {seed: index[key] for seed in stage.seeds
                 if (key := stage.row_key(rule, seed)) in index
                 and index[key].status != Status.FAILED}
        lr, scores = tuned_scores(evals)
        entries.append(Entry(str(rule), rule.fingerprint, rule.tokens, name, lr, scores))
    compare(entries)
    entries.sort(key=lambda e: (math.isnan(e.mean), -e.mean if not math.isnan(e.mean) else 0.0))
    return TaskTable(stage.name, stage.task, stage.seeds, entries)


def tuned_scores(evals: Mapping[int, Evaluation]) -> tuple[float | None, dict[int, float]]:
    """The learning rate whose mean validation score over the seeds is best (the first of the grid among ties),
    and each seed's test score at it: the lr is tuned on validation and the score is measured on held-out test
    data, as a user would tune and then report. A rule that never trained scores 0."""
    lrs = list(dict.fromkeys(p.lr for ev in evals.values() for p in ev.per_lr))
    if not lrs:
        return None, dict.fromkeys(evals, 0.0)
    by_lr = [{p.lr: p for p in ev.per_lr} for ev in evals.values()]
    best = max(lrs, key=lambda lr: np.mean([r[lr].val_acc if lr in r else 0.0 for r in by_lr]))
    return best, {seed: (r[best].test_acc if best in r else 0.0) for seed, r in zip(evals, by_lr, strict=True)}


def compare(entries: Sequence[Entry]) -> None:
    """Fill in each entry's gap to the best baseline (by mean), the found rules' paired p-values, Holm-adjusted
    over them, and the verdicts."""
    baselines = [e for e in entries if e.baseline is not None and e.scores]
    if not baselines:
        for e in entries:
            e.verdict = "incomplete"
        return
    best = max(baselines, key=lambda e: e.mean)
    for e in entries:
        e.gap = e.mean - best.mean
        if e.baseline is not None:
            e.verdict = "best baseline" if e is best else "baseline"
        else:
            e.p = paired_p(e.scores, best.scores)
    found = [e for e in entries if e.baseline is None]
    for e, adjusted in zip(found, holm([e.p for e in found]), strict=True):
        e.p_adjusted = adjusted
        e.verdict = verdict(e.gap, adjusted)


def paired_p(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    """Two-sided paired t-test over the seeds both have (same seed: same init and minibatches), as
    `scipy.stats.ttest_rel`; NaN with fewer than two. Differences equal on every seed give p 1 when they are
    zero and 0 otherwise (the t statistic is infinite). With n seeds the test has n − 1 degrees of freedom and
    assumes roughly normal differences; with 3 seeds only a large, consistent gap reaches significance."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return math.nan
    d = np.array([a[s] - b[s] for s in seeds])
    spread = float(np.std(d, ddof=1))
    if spread == 0.0:
        return 1.0 if not d.any() else 0.0
    t = float(d.mean()) / (spread / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest of m p-values is multiplied by m − k + 1, kept monotone and
    at most 1, so the chance of any false verdict among a task's rules stays below ALPHA. NaNs stay NaN and do not
    count toward m."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * p))
        adjusted[i] = running
    return adjusted


def verdict(gap: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """beats / loses when the adjusted p is below `alpha` (by the gap's sign); ties otherwise."""
    if math.isnan(p_adjusted) or math.isnan(gap):
        return "incomplete"
    if p_adjusted < alpha and gap != 0:
        return "beats" if gap > 0 else "loses"
    return "ties"


def leaderboard(tables: Sequence[TaskTable]) -> list[Standing]:
    """Rules and baselines by mean rank over the held-out tasks (ranks, unlike scores, compare across metrics)."""
    ranks: dict[str, list[float]] = {}
    standings: dict[str, Standing] = {}
    for table in tables:
        scored = [e for e in table.entries if e.scores]
        for e, rank in zip(scored, stats.rankdata([-e.mean for e in scored]), strict=True):
            ranks.setdefault(e.fingerprint, []).append(float(rank))
            s = standings.setdefault(e.fingerprint, Standing(e.name, e.baseline is not None, math.nan, {}, {}))
            s.verdicts[table.task], s.gaps[table.task] = e.verdict, e.gap
    for fp, s in standings.items():
        s.mean_rank = float(np.mean(ranks[fp]))
    return sorted(standings.values(), key=lambda s: (s.mean_rank, -s.count("beats")))


def _stage_json(stage: Stage) -> dict[str, Any]:
    return {"name": stage.name, "settings": stage.settings.to_json(), "seeds": list(stage.seeds)}


def _stage(d: dict[str, Any]) -> Stage:
    return Stage(d["name"], Settings.from_json(d["settings"]), tuple(d["seeds"]))


__all__ = [
    "ALPHA", "DEFAULT_TASKS", "FUNNEL_BASELINES", "PROXY", "TRANSFER", "Entry", "FunnelConfig", "FunnelProgress",
    "FunnelResult", "Plan", "Prediction", "Stage", "Standing", "TaskTable", "analyze", "funnel", "holm",
    "leaderboard", "load_funnel", "make_plan", "paired_p", "read_plan", "settings_key", "spearman", "tuned_scores",
    "verdict",
]


# --- presentation (shared by the command line and the report) -----------------------------------------
ENTRY_HEADERS = ("#", "rule", "lr", "mean ± sem", "gap", "p", "p (Holm)", "verdict", "seeds")
STANDING_HEADERS = ("#", "rule", "mean rank", "beats / ties / loses")
PREDICTION_HEADERS = ("held-out task", "finalists", "Spearman with stage 1", "Spearman with stage 2")


def entry_texts(rank: int, entry: Entry) -> list[str]:
    """A table row for `entry`, as ENTRY_HEADERS (the rule cell is the rule text, or a baseline's name and text)."""
    name = entry.rule if entry.baseline in (None, entry.rule) else f"{entry.baseline} ({entry.rule})"
    return [str(rank), name, "—" if entry.lr is None else f"{entry.lr:g}",
            "—" if math.isnan(entry.mean) else f"{entry.mean:.4f} ± {_num(entry.sem, '.4f')}",
            _num(entry.gap, "+.4f"), _num(entry.p, ".3g"), _num(entry.p_adjusted, ".3g"), entry.verdict,
            str(len(entry.scores))]


def standing_texts(rank: int, s: Standing, tasks: Sequence[str]) -> list[str]:
    """A leaderboard row, as STANDING_HEADERS followed by the gap on each of `tasks`."""
    tally = "—" if s.baseline else f"{s.count('beats')} / {s.count('ties')} / {s.count('loses')}"
    return [str(rank), s.name + (" (baseline)" if s.baseline else ""), f"{s.mean_rank:.2f}", tally,
            *(_num(s.gaps.get(task, math.nan), "+.4f") for task in tasks)]


def prediction_texts(p: Prediction) -> list[str]:
    """A row of PREDICTION_HEADERS."""
    return [p.task, str(p.rules), _num(p.stage1, "+.2f"), _num(p.stage2, "+.2f")]


def explanation(result: FunnelResult) -> str:
    """How to read the tables, with the limits of the test at this many seeds."""
    n = min((len(t.seeds) for t in [result.proxy, *result.transfer]), default=0)
    return (f"Each rule's learning rate is tuned per task on the validation split (best mean over the seeds); "
            "the score is the test score at that rate (reward scale: higher is better), mean ± standard error "
            "over seeds. gap = mean − the best baseline's mean. p: two-sided paired "
            f"t-test against the best baseline over the same seeds (same initialization and minibatches), Holm-"
            f"adjusted over the found rules of the task; beats / loses when the adjusted p < {ALPHA} (by the "
            f"gap's sign), else ties. With {n} seeds the test has {n - 1} degree(s) of freedom and assumes roughly "
            "normal differences: only large, consistent gaps reach significance, and 'ties' means 'not shown to "
            "differ', not 'equal'.")


def _num(value: float, spec: str) -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)
