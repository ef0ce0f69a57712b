"""A funnel's answer from its stored rows: per task, each rule's tuned score over seeds, its gap to the best
baseline and its verdict; over the held-out tasks, a leaderboard by mean rank.

Rows may be missing (a funnel still running or stopped): the analysis uses what is there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optsearch.dsl import Rule
from optsearch.engine.funnel_plan import META_KEY, Plan, Stage
from optsearch.engine.stats import holm, paired_p, spearman, verdict
from optsearch.engine.store import Store, StoredEvaluation
from optsearch.tasks.results import Evaluation, Status, baselines_broken


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
    verdict: str = ""  # beats | ties | loses (found rules); best baseline | baseline; incomplete | invalid

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
    problem: str | None = None  # why the task cannot rank anything (its baselines never trained); None if it can

    @property
    def results(self) -> int:
        """The results stored for this table's entries (a failed one is retried, so it does not count)."""
        return sum(len(e.scores) for e in self.entries)

    @property
    def expected(self) -> int:
        return len(self.entries) * len(self.seeds)

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
    def progress(self) -> tuple[int, int]:
        """(results stored, results planned): the transfer stages plan their finalists before stage 2 picks them."""
        plan = self.plan
        finalists = len(plan.baselines) + min(plan.config.finalists, len(plan.candidates))
        planned = self.proxy.expected + sum(finalists * len(t.seeds) for t in self.transfer)
        return sum(t.results for t in [self.proxy, *self.transfer]), planned

    @property
    def complete(self) -> bool:
        done, planned = self.progress
        return done == planned

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


def analyze(plan: Plan, rows: Sequence[StoredEvaluation]) -> FunnelResult:
    """The per-task rankings and the leaderboard of `plan` from the stored `rows` (complete or not)."""
    index = {row.key: row.evaluation for row in rows}
    proxy = _table(plan.proxy, plan.entrants(plan.candidates), index)
    finals = finalists_of(proxy, plan.config.finalists)
    transfer = [_table(stage, plan.entrants(finals), index) for stage in plan.transfer]
    return FunnelResult(plan, proxy, transfer, leaderboard(transfer), finals)


def finalists_of(proxy: TaskTable, m: int) -> list[Rule]:
    """The `m` found rules of stage 2 with the best mean score (only those scored on every seed)."""
    complete = [e for e in proxy.found if len(e.scores) == len(proxy.seeds)]
    return [Rule.from_tokens(e.tokens) for e in complete[:m]]


def _table(stage: Stage, rules: Sequence[tuple[Rule, str | None]], index: Mapping[tuple, Evaluation]) -> TaskTable:
    entries, baseline_rows = [], []
    for rule, name in rules:
        rows = {seed: index[key] for seed in stage.seeds if (key := stage.row_key(rule, seed)) in index}
        if name is not None:
            baseline_rows += rows.values()
        lr, scores = tuned_scores({seed: ev for seed, ev in rows.items() if ev.status != Status.FAILED})
        entries.append(Entry(str(rule), rule.fingerprint, rule.tokens, name, lr, scores))
    problem = baselines_broken(baseline_rows)
    compare(entries, len(stage.seeds), problem)
    entries.sort(key=lambda e: (math.isnan(e.mean), -e.mean if not math.isnan(e.mean) else 0.0))
    return TaskTable(stage.name, stage.task, stage.seeds, entries, problem)


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


def compare(entries: Sequence[Entry], seeds: int | None = None, problem: str | None = None) -> None:
    """Fill in each entry's gap to the best baseline (by mean), the found rules' paired p-values, Holm-adjusted
    over them, and the verdicts. On a task with a `problem` every verdict is "invalid"; while an entry has fewer
    than `seeds` scores (None: as many as the others), the found rules' numbers are provisional and their verdict
    is "incomplete"."""
    baselines = [e for e in entries if e.baseline is not None and e.scores]
    if problem is not None or not baselines:
        for e in entries:
            e.verdict = "invalid" if problem is not None else "incomplete"
        return
    seeds = max(len(e.scores) for e in entries) if seeds is None else seeds
    complete = all(len(e.scores) == seeds for e in entries)
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
        e.verdict = verdict(e.gap, adjusted) if complete else "incomplete"


def leaderboard(tables: Sequence[TaskTable]) -> list[Standing]:
    """Rules and baselines by mean rank over the held-out tasks (ranks, unlike scores, compare across metrics)."""
    ranks: dict[str, list[float]] = {}
    standings: dict[str, Standing] = {}
    for table in [t for t in tables if t.problem is None]:
        scored = [e for e in table.entries if e.scores]
        for e, rank in zip(scored, stats.rankdata([-e.mean for e in scored]), strict=True):
            ranks.setdefault(e.fingerprint, []).append(float(rank))
            s = standings.setdefault(e.fingerprint, Standing(e.name, e.baseline is not None, math.nan, {}, {}))
            s.verdicts[table.task], s.gaps[table.task] = e.verdict, e.gap
    for fp, s in standings.items():
        s.mean_rank = float(np.mean(ranks[fp]))
    return sorted(standings.values(), key=lambda s: (s.mean_rank, -s.count("beats")))


def load_funnel(store: Store) -> FunnelResult | None:
    """The latest funnel of a store as its rows stand now (None if it never ran one): what the report shows."""
    stored = store.get_meta(META_KEY)
    if stored is None:
        return None
    plan = Plan.from_json(stored)
    return analyze(plan, store.evaluations())
