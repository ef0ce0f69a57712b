"""A funnel's answer from its stored rows: per task, each rule's tuned score over seeds, its gap to the best
baseline, its verdict and the smallest gap the test could have seen; over the held-out tasks, a leaderboard by
mean rank.

Rows may be missing (a funnel still running or stopped): the analysis uses what is there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from optsearch.dsl import Rule
from optsearch.engine.funnel_plan import FOUND, META_KEY, PROXY, REFERENCE, Entrant, Plan, Stage
from optsearch.engine.stats import detectable_gap, holm, paired_differences, paired_p, spearman, verdict
from optsearch.engine.store import BASELINE, Store, StoredEvaluation
from optsearch.optim.zoo import resolve
from optsearch.tasks.results import Evaluation, Status, baselines_broken
from optsearch.tasks.suite import SUITE_BASELINES, Reference, aggregate


@dataclass
class Entry:
    """One rule on one task over the seeds: its learning rate (best mean validation score over the tuning seeds),
    its test score there per scored seed, and how it compares with the best baseline (`gap` = mean − that
    baseline's mean, a paired t-test over the common seeds, Holm-adjusted over the task's rules of the same role;
    `detectable`: the smallest gap that test finds with 80% power at this rule's spread). On a suite, the scores
    are suite rewards, `lr` is None (each task tunes its own) and `per_task` holds each task's mean raw score and
    mean normalized score over the seeds."""

    rule: str
    fingerprint: str
    tokens: tuple[str, ...]
    label: str | None  # the display name of a baseline or reference rule; None for a found rule
    role: str  # BASELINE | REFERENCE | FOUND
    lr: float | None
    scores: dict[int, float]
    gap: float = math.nan
    p: float = math.nan
    p_adjusted: float = math.nan
    detectable: float = math.nan
    verdict: str = ""  # beats | ties | loses (found, reference rules); best baseline | baseline; incomplete | invalid
    per_task: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.rule

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
    """The ranking on one task of one stage: found rules, reference rules and baselines, best mean first, scored
    on `seeds` (after tuning on `tune_seeds`, when a held-out stage tunes apart). Stage 2 of a suite search is one
    table named after the suite, its `tasks` listed (empty for a single task)."""

    stage: str
    task: str
    seeds: tuple[int, ...]
    entries: list[Entry]
    tune_seeds: tuple[int, ...] = ()
    problem: str | None = None  # why the task cannot rank anything (its baselines never trained); None if it can
    tasks: tuple[str, ...] = ()

    @property
    def results(self) -> int:
        """The scores stored for this table's entries (a failed one is retried, so it does not count)."""
        return sum(len(e.scores) for e in self.entries)

    @property
    def expected(self) -> int:
        return len(self.entries) * len(self.seeds)

    @property
    def best_baseline(self) -> Entry | None:
        return next((e for e in self.entries if e.verdict == "best baseline"), None)

    @property
    def found(self) -> list[Entry]:
        return [e for e in self.entries if e.role == FOUND]

    @property
    def versus_references(self) -> Versus | None:
        """Where the best found rule stands against the best reference rule (by mean); None without both."""
        found, refs = ([e for e in self.entries if e.role == role and e.scores] for role in (FOUND, REFERENCE))
        if not found or not refs:
            return None
        best, ref = max(found, key=lambda e: e.mean), max(refs, key=lambda e: e.mean)
        return Versus(best, ref, best.mean - ref.mean, paired_p(best.scores, ref.scores))


@dataclass(frozen=True)
class Versus:
    """The search's best rule on a task against the paper's best there: gap of means and paired p (unadjusted)."""

    found: Entry
    reference: Entry
    gap: float
    p: float


@dataclass
class Standing:
    """A rule's place over the held-out tasks: mean rank (1 = best; all rules ranked together on each task) and
    its verdicts against each task's best baseline."""

    name: str
    role: str
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
        """(scores stored, scores planned), a rule's score on a held-out task counting once its score seed is
        trained: the transfer stages plan their finalists before stage 2 picks them."""
        plan = self.plan
        finalists = (len(plan.baselines) + len(plan.references) + min(plan.config.finalists, len(plan.candidates))
                     + len(plan.also))
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
    entrants = plan.entrants(plan.rescored)
    proxy = _suite_table(plan, entrants, index) if plan.suite else _table(plan.proxy, entrants, index)
    finals = finalists_of(proxy, plan.config.finalists, plan.also)
    transfer = [_table(stage, plan.entrants(finals), index) for stage in plan.transfer]
    return FunnelResult(plan, proxy, transfer, leaderboard(transfer), finals)


def finalists_of(proxy: TaskTable, m: int, also: Sequence[Rule] = ()) -> list[Rule]:
    """The `m` found rules of stage 2 with the best mean score, then the `also` rules (only those scored on every
    seed)."""
    extra = {r.fingerprint for r in also}
    complete = [e for e in proxy.found if len(e.scores) == len(proxy.seeds)]
    best = [e for e in complete if e.fingerprint not in extra][:m]
    return [Rule.from_tokens(e.tokens) for e in best + [e for e in complete if e.fingerprint in extra]]


def _table(stage: Stage, entrants: Sequence[Entrant], index: Mapping[tuple, Evaluation]) -> TaskTable:
    entries, baseline_rows = [], []
    for e in entrants:
        rows = {seed: index[key] for seed in stage.seeds if (key := stage.row_key(e.rule, seed)) in index}
        if e.role == BASELINE:
            baseline_rows += rows.values()
        lr, scores = tuned_scores({seed: ev for seed, ev in rows.items() if ev.status != Status.FAILED})
        if stage.score_seeds:  # the tuning seeds chose the lr: only the fresh seeds score it
            scores = _fresh_scores(stage, e.rule, lr, bool(scores), index)
        entries.append(Entry(str(e.rule), e.rule.fingerprint, e.rule.tokens, e.name, e.role, lr, scores))
    seeds = stage.score_seeds or stage.seeds
    problem = baselines_broken(baseline_rows)
    compare(entries, len(seeds), problem)
    return TaskTable(stage.name, stage.task, seeds, _best_first(entries), stage.seeds if stage.score_seeds else (),
                     problem)


def _suite_table(plan: Plan, entrants: Sequence[Entrant], index: Mapping[tuple, Evaluation]) -> TaskTable:
    """Stage 2 of a suite search, scored as its search was: a rule's score on a seed is the aggregate over the
    tasks of its score there (tuned as on any task) normalized against the suite baselines on that seed, as the
    search normalized against those on its own seed. A seed counts once every task has it."""
    tables = [_table(stage, entrants, index) for stage in plan.suite]
    suite_baselines = {resolve(name).fingerprint: name for name in SUITE_BASELINES}  # every one is a plan baseline
    refs: dict[tuple[str, int], Reference] = {}
    for t in tables:
        scores = {e.fingerprint: e.scores for e in t.entries if e.fingerprint in suite_baselines}
        for seed in plan.proxy.seeds:
            if all(seed in scores.get(fp, {}) for fp in suite_baselines):
                refs[t.task, seed] = Reference(t.task, tuple((name, scores[fp][seed])
                                                             for fp, name in suite_baselines.items()))
    by_task = [{e.fingerprint: e for e in t.entries} for t in tables]
    entries = []
    for e in entrants:
        parts = [(t.task, found[e.rule.fingerprint]) for t, found in zip(tables, by_task, strict=True)]
        normalized = {task: {seed: refs[task, seed].normalize(score) for seed, score in part.scores.items()
                             if (task, seed) in refs} for task, part in parts}
        seeds = [seed for seed in plan.proxy.seeds if all(seed in normalized[task] for task, _ in parts)]
        scores = {seed: aggregate([normalized[task][seed] for task, _ in parts], plan.aggregate) for seed in seeds}
        per_task = {task: (part.mean, float(np.mean(list(normalized[task].values()))) if normalized[task] else math.nan)
                    for task, part in parts}
        entries.append(Entry(str(e.rule), e.rule.fingerprint, e.rule.tokens, e.name, e.role, None, scores,
                             per_task=per_task))
    problem = next((f"{t.task}: {t.problem}" for t in tables if t.problem is not None), None)
    compare(entries, len(plan.proxy.seeds), problem)
    return TaskTable(PROXY, ",".join(t.task for t in tables), plan.proxy.seeds, _best_first(entries), (), problem,
                     tuple(t.task for t in tables))


def _best_first(entries: list[Entry]) -> list[Entry]:
    """`entries` by mean, best first, the unscored last."""
    return sorted(entries, key=lambda e: (math.isnan(e.mean), -e.mean if not math.isnan(e.mean) else 0.0))


def _fresh_scores(stage: Stage, rule: Rule, lr: float | None, tuned: bool,
                  index: Mapping[tuple, Evaluation]) -> dict[int, float]:
    """`rule`'s scores on the stage's score seeds at its tuned `lr`: 0 on each if it never trained while `tuned`
    (lr None), none before it is tuned."""
    if lr is None:
        return dict.fromkeys(stage.score_seeds, 0.0) if tuned else {}
    rows = {seed: index.get(stage.score_key(rule, seed, lr)) for seed in stage.score_seeds}
    return {seed: score_at(ev, lr) for seed, ev in rows.items() if ev is not None and ev.status != Status.FAILED}


def tuned_scores(evals: Mapping[int, Evaluation]) -> tuple[float | None, dict[int, float]]:
    """The learning rate whose mean validation score over the seeds is best (the first of the grid among ties),
    and each seed's test score at it: the lr is tuned on validation and the score is measured on held-out test
    data, as a user would tune and then report. A rule that never trained scores 0."""
    lrs = list(dict.fromkeys(p.lr for ev in evals.values() for p in ev.per_lr))
    if not lrs:
        return None, dict.fromkeys(evals, 0.0)
    by_lr = [{p.lr: p for p in ev.per_lr} for ev in evals.values()]
    best = max(lrs, key=lambda lr: np.mean([r[lr].val_acc if lr in r else 0.0 for r in by_lr]))
    return best, {seed: score_at(ev, best) for seed, ev in evals.items()}


def score_at(ev: Evaluation, lr: float) -> float:
    """`ev`'s test score at `lr`; 0 where it has none there (it never trained at that rate)."""
    return next((p.test_acc for p in ev.per_lr if p.lr == lr), 0.0)


def compare(entries: Sequence[Entry], seeds: int | None = None, problem: str | None = None) -> None:
    """Fill in each entry's gap to the best baseline (by mean); for the found rules and, apart, the reference
    rules: paired p-values Holm-adjusted within their role, verdicts, and the gap each test could detect. On a
    task with a `problem` every verdict is "invalid"; while an entry has fewer than `seeds` scores (None: as many
    as the others), the numbers are provisional and the verdicts "incomplete"."""
    baselines = [e for e in entries if e.role == BASELINE and e.scores]
    if problem is not None or not baselines:
        for e in entries:
            e.verdict = "invalid" if problem is not None else "incomplete"
        return
    seeds = max(len(e.scores) for e in entries) if seeds is None else seeds
    complete = all(len(e.scores) == seeds for e in entries)
    best = max(baselines, key=lambda e: e.mean)
    for e in entries:
        e.gap = e.mean - best.mean
        if e.role == BASELINE:
            e.verdict = "best baseline" if e is best else "baseline"
    for role in (FOUND, REFERENCE):
        judged = [e for e in entries if e.role == role]
        for e in judged:
            e.p = paired_p(e.scores, best.scores)
            d = paired_differences(e.scores, best.scores)
            e.detectable = detectable_gap(float(np.std(d, ddof=1)) if len(d) > 1 else math.nan, len(d), len(judged))
        for e, adjusted in zip(judged, holm([e.p for e in judged]), strict=True):
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
            s = standings.setdefault(e.fingerprint, Standing(e.name, e.role, math.nan, {}, {}))
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
