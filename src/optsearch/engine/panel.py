"""The proxy-validity panel: how well does a cheap reward (a proxy task or suite) predict held-out results?

A panel is a SQLite file whose `evaluations` rows (the funnel's format, stage "transfer") hold a fixed set of rules
scored on held-out tasks over several seeds; any funnel db is one too (its finalists and baselines). On each
held-out task a rule's score is its mean test score over the seeds at the learning rate tuned on the mean validation
score (as the funnel ranks); where the task has "score" rows (the rate tuned on other seeds, then trained alone on
fresh ones, as the funnel's stage 3 does) those alone are its truth. The rules are ranked per task and the ranks
averaged: the held-out mean rank.
`judge` scores a candidate proxy on the panel's rules and gives its Spearman correlation with the held-out mean
rank and with each task, each with a bootstrap 95% interval over rules, beside the panel's own reliability: the
split-half Spearman of the mean rank (even-indexed seeds against odd), stepped up to the full panel by
Spearman-Brown, and how far the held-out tasks agree with each other. A proxy cannot be judged more precisely
than that ceiling.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from optsearch.dsl import Rule
from optsearch.engine.funnel_analysis import tuned_scores
from optsearch.engine.funnel_plan import SCORE, TRANSFER, Stage, steps_per_task
from optsearch.engine.stats import spearman
from optsearch.engine.store import Store, StoredEvaluation, StoreError
from optsearch.optim.zoo import resolve
from optsearch.tasks.evaluate import Progress, evaluate_settings
from optsearch.tasks.registry import get_task
from optsearch.tasks.results import Evaluation
from optsearch.tasks.settings import Settings, SettingsError
from optsearch.tasks.suite import Suite, evaluate_suite

BOOTSTRAP = 2000
"""Resamples of the rules behind each interval."""
CONFIDENCE = 0.95
MIN_RULES = 3
"""Fewer rules than this have no rank correlation."""
STACKED_CHUNK = 8
"""A build trains and stores rule by rule on tasks that train their members one after another, and this many rules
at a time on a stacked MLP (which trains several rules faster together)."""


@dataclass
class Panel:
    """The held-out results of a panel: rule texts (in the file's order) and, per task, per rule (fingerprint),
    each seed's evaluation."""

    path: str
    rules: dict[str, str]  # fingerprint -> rule text
    results: dict[str, dict[str, dict[int, Evaluation]]]  # task -> fingerprint -> seed -> evaluation

    @property
    def tasks(self) -> list[str]:
        return list(self.results)

    def seeds(self, task: str) -> list[int]:
        return sorted({seed for by_seed in self.results[task].values() for seed in by_seed})

    def scores(self, task: str, seeds: Sequence[int] | None = None) -> list[float]:
        """Each rule's mean held-out score on `task` (over `seeds`, default all) at its tuned learning rate."""
        out = []
        for fingerprint in self.rules:
            evals = {s: ev for s, ev in self.results[task][fingerprint].items() if seeds is None or s in seeds}
            out.append(float(np.mean(list(tuned_scores(evals)[1].values()))) if evals else 0.0)
        return out

    def mean_rank(self, half: int | None = None) -> list[float]:
        """Each rule's rank (1 = best) averaged over the tasks; `half` 0 or 1: on even- or odd-indexed seeds only."""
        ranks = []
        for task in self.tasks:
            seeds = None if half is None else self.seeds(task)[half::2]
            ranks.append(stats.rankdata([-s for s in self.scores(task, seeds)]))
        return list(np.mean(ranks, axis=0))


def read_panel(path: str | Path) -> Panel:
    """The held-out rows of `path` (a task's "score" rows where it has any, else its "transfer" rows); the rules
    kept are those with results on every task (StoreError, naming what is wrong, for a file that holds no panel)."""
    if not Path(path).is_file():
        raise StoreError(f"panel: no file at {path}; allowed: a SQLite file with held-out results "
                         "(optsearch build-panel, or a funnel's db)")
    with Store(path, readonly=True) as store:
        rows = [row for row in store.evaluations() if row.stage in (TRANSFER, SCORE)]
    keys: dict[str, set[str]] = {}
    for row in rows:
        if row.stage == TRANSFER:
            keys.setdefault(row.task, set()).add(row.settings)
    mixed = sorted(task for task, k in keys.items() if len(k) > 1)
    if mixed:
        raise StoreError(f"panel: {path} holds {', '.join(mixed)} under several settings; allowed: one per task")
    scored = {row.task for row in rows if row.stage == SCORE}
    results: dict[str, dict[str, dict[int, Evaluation]]] = {}
    texts: dict[str, str] = {}
    for row in rows:
        if (row.stage == SCORE) == (row.task in scored):
            results.setdefault(row.task, {}).setdefault(row.fingerprint, {})[row.seed] = row.evaluation
            texts.setdefault(row.fingerprint, row.rule)
    common = [fp for fp in texts if all(fp in by_rule for by_rule in results.values())]
    if len(common) < MIN_RULES:
        raise StoreError(f"panel: {path} has {len(common)} rule(s) scored on every held-out task "
                         f"({', '.join(results) or 'no task'}); allowed: {MIN_RULES} or more")
    return Panel(str(path), {fp: texts[fp] for fp in common},
                 {task: {fp: by_rule[fp] for fp in common} for task, by_rule in results.items()})


@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation of the proxy with `against`, and its bootstrap interval over rules."""

    against: str
    rho: float
    low: float
    high: float


@dataclass
class Verdict:
    """What `judge` found: the proxy's correlations and the panel's own reliability (the ceiling)."""

    proxy: str
    rules: int
    rewards: list[float]
    mean_rank: Correlation
    tasks: list[Correlation]
    split_half: float  # Spearman of the mean rank on even-indexed seeds against odd-indexed (NaN: one seed)
    agreement: list[tuple[str, str, float]]  # Spearman of each pair of held-out tasks' scores
    seconds_per_rule: float

    @property
    def reliability(self) -> float:
        """The split-half correlation stepped up to the whole panel (Spearman-Brown: 2r / (1 + r))."""
        return 2 * self.split_half / (1 + self.split_half)


def bootstrap(x: Sequence[float], y: Sequence[float], against: str, resamples: int = BOOTSTRAP,
              seed: int = 0) -> Correlation:
    """Spearman of x and y with a percentile interval over `resamples` resamples of the pairs (a resample with a
    constant side, which has no correlation, is left out)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    rx, ry = (stats.rankdata(v[picks], axis=1) for v in (x, y))
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    norms = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    kept = norms > 0
    draws = (rx * ry).sum(axis=1)[kept] / norms[kept]  # Spearman = Pearson of the ranks, per resample
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (np.nan, np.nan)
    return Correlation(against, spearman(x, y), float(low), float(high))


def score_proxy(panel: Panel, proxy: Settings | Suite, progress: Progress | None = None) -> tuple[list[float], float]:
    """The proxy's reward of each panel rule (a suite's aggregate), and the seconds it took per rule."""
    rules = [resolve(text) for text in panel.rules.values()]
    start = time.perf_counter()
    if isinstance(proxy, Suite):
        rewards = [ev.reward for ev in evaluate_suite(rules, proxy, progress=progress)]
    else:
        rewards = [ev.reward for ev in evaluate_settings(rules, proxy, progress)]
    return rewards, (time.perf_counter() - start) / len(rules)


def judge(panel: Panel, proxy: Settings | Suite, progress: Progress | None = None,
          rewards: tuple[list[float], float] | None = None) -> Verdict:
    """Score `proxy` on the panel's rules (or take its `rewards` and seconds per rule) and compare with the panel."""
    values, seconds = rewards or score_proxy(panel, proxy, progress)
    name = proxy.name if isinstance(proxy, Suite) else proxy.task
    with_rank = bootstrap(values, [-r for r in panel.mean_rank()], "held-out mean rank")
    with_tasks = [bootstrap(values, panel.scores(task), task) for task in panel.tasks]
    halves = spearman(panel.mean_rank(0), panel.mean_rank(1)) if all(
        len(panel.seeds(task)) > 1 for task in panel.tasks) else float("nan")
    agreement = [(a, b, spearman(panel.scores(a), panel.scores(b))) for a, b in itertools.combinations(panel.tasks, 2)]
    return Verdict(name, len(panel.rules), values, with_rank, with_tasks, halves, agreement, seconds)


def build_panel(path: str | Path, rules: Sequence[str], tasks: Sequence[str], seeds: Sequence[int],
                steps: int | Mapping[str, int] | None = None, lrs: Sequence[float] | None = None,
                precision: str = "auto", tune_seeds: Sequence[int] = (),
                on_result: Callable[[str, int, int], None] | None = None) -> int:
    """Score `rules` on each held-out task at each seed and store the rows in `path` (created, or completed:
    rows present are kept, so a stopped build resumes). The learning-rate grid (default: the paper's) is extended
    a decade while a rule's best lr is at its edge, as the funnel's stage 3 does. `steps`: one budget for every
    task or task -> budget (a task left out trains its own). With `tune_seeds`, the grid trains on those seeds
    only, and each rule's rate tuned there (validation) trains alone on `seeds` ("score" rows, the panel's truth:
    the tuning seeds chose the rate, so their scores flatter it). `on_result(task, rules done, rules)` is called
    as each rule (each few rules on a stacked MLP) is done. Returns the rows computed."""
    resolved = list({(r := resolve(text)).fingerprint: r for text in rules}.values())
    if len(resolved) < MIN_RULES:
        raise SettingsError(f"rules: got {len(resolved)} distinct rule(s); allowed: {MIN_RULES} or more")
    if not tasks:
        raise SettingsError("tasks: got none; allowed: one or more held-out task names")
    budgets = steps_per_task(steps, tasks)
    if set(tune_seeds) & set(seeds):
        raise SettingsError(f"tune_seeds: got {sorted(tune_seeds)}, which share seeds with the score seeds "
                            f"{sorted(seeds)}; allowed: disjoint seeds")
    stages = [Stage(TRANSFER, Settings(task, **({} if lrs is None else {"lrs": tuple(lrs)}), steps=budgets.get(task),
                                       precision=precision, extend_lrs=True),
                    tuple(tune_seeds or seeds), tuple(seeds) if tune_seeds else ())
              for task in dict.fromkeys(tasks)]
    computed = 0
    with Store(path) as store:
        present = {row.key: row.evaluation for row in store.evaluations()}

        def train(settings: Settings, rules: list[Rule], seed: int, key: Callable[[Rule], tuple]) -> None:
            nonlocal computed
            todo = [r for r in rules if key(r) not in present]
            for rule, ev in zip(todo, evaluate_settings(todo, settings.replace(seed=seed)) if todo else [],
                                strict=True):
                fingerprint, stage_name, task, _, settings_id = key(rule)
                row = StoredEvaluation(fingerprint, str(rule), stage_name, task, seed, settings_id, ev)
                store.add_evaluation(row)
                present[row.key] = ev
                computed += 1

        for stage in stages:
            # rule by rule (a few at a time on a stacked MLP, which trains them faster together), each tuned and
            # scored before the next: a stopped build keeps every finished rule, and any prefix of the rules is a
            # complete panel on the task
            chunk = STACKED_CHUNK if get_task(stage.task).stacked else 1
            for first in range(0, len(resolved), chunk):
                rules = resolved[first:first + chunk]
                for seed in stage.seeds:
                    train(stage.settings, rules, seed, lambda r, seed=seed, stage=stage: stage.row_key(r, seed))
                by_lr: dict[float, list[Rule]] = {}
                for rule in rules if stage.score_seeds else []:
                    lr, _ = tuned_scores({s: present[stage.row_key(rule, s)] for s in stage.seeds})
                    if lr is not None:  # None: the rule never trained (invalid), so it has no rate to score
                        by_lr.setdefault(lr, []).append(rule)
                for seed in stage.score_seeds:
                    for lr, group in by_lr.items():
                        train(stage.score_settings(lr), group, seed,
                              lambda r, seed=seed, stage=stage, lr=lr: stage.score_key(r, seed, lr))
                if on_result is not None:
                    on_result(stage.task, first + len(rules), len(resolved))
    return computed
