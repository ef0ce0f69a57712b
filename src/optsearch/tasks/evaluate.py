"""`evaluate`: the reward of update rules, as in the paper — train the task's network with each rule over a grid of
learning rates and keep the best validation score (accuracy, 1/perplexity, ...: higher is better). The test
score is recorded, never used to select."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, overload

import torch

from optsearch import validate
from optsearch.dsl import Rule
from optsearch.optim.zoo import resolve
from optsearch.tasks.population import Halving, RuleRun, curve_steps, train_stacked
from optsearch.tasks.precision import fast_bf16
from optsearch.tasks.registry import DEFAULT_TASK, Task, get_task, load_splits
from optsearch.tasks.results import CurvePoint, Evaluation, LrResult, Status
from optsearch.tasks.sequential import train_sequential
from optsearch.tasks.settings import LR_LIMITS, PAPER_LRS, Settings, SettingsError

if TYPE_CHECKING:
    from optsearch.tasks.suite import SuiteEvaluation

Progress = Callable[[int, int], None]


@overload
def evaluate(rules: str | Rule, task: str | Task = ..., lrs: Sequence[float] | None = ..., steps: int | None = ...,
             batch_size: int | None = ..., seed: int = ..., device: str | torch.device = ...,
             data_dir: str | Path | None = ..., precision: str = ..., progress: Progress | None = ...,
             fidelity: str = ..., extend_lrs: bool = ..., seeds: int | Sequence[int] | None = ...,
             aggregate: str | None = ...) -> Evaluation: ...
@overload
def evaluate(rules: Sequence[str | Rule], task: str | Task = ..., lrs: Sequence[float] | None = ...,
             steps: int | None = ..., batch_size: int | None = ..., seed: int = ...,
             device: str | torch.device = ..., data_dir: str | Path | None = ...,
             precision: str = ..., progress: Progress | None = ..., fidelity: str = ..., extend_lrs: bool = ...,
             seeds: int | Sequence[int] | None = ..., aggregate: str | None = ...) -> list[Evaluation]: ...


def evaluate(rules: str | Rule | Sequence[str | Rule], task: str | Task | Sequence[str] = DEFAULT_TASK,
             lrs: Sequence[float] | None = None, steps: int | None = None, batch_size: int | None = None, seed: int = 0,
             device: str | torch.device = "cpu", data_dir: str | Path | None = None,
             precision: str = "auto", progress: Progress | None = None, fidelity: str = "full",
             extend_lrs: bool = False, seeds: int | Sequence[int] | None = None, aggregate: str | None = None,
             ) -> Evaluation | list[Evaluation] | SuiteEvaluation | list[SuiteEvaluation]:
    """Train `task`'s child network with each rule at each learning rate; one Evaluation per rule.

    `task`: a task name (`optsearch tasks`), a spec "path/to/file.py:make_task" / "package.module:make_task"
    naming a function that returns a Task, or a Task object (registered in this process by its name).
    `rules`: a rule (Rule, infix text or zoo name such as "adam") or a list of them. All (rule, lr) members of
    one call train together on the same minibatches; equal rules are trained once. `lrs` defaults to the paper's
    grid, `steps` and `batch_size` to the task's budget; every rule gets total_steps = steps. The same rules,
    task, budget and seed give the same rewards however the rules are split into calls. A rule that cannot be
    parsed or fails while training comes back `invalid`; it never stops the others.

    `precision`: "auto" runs the child's forward and backward under bfloat16 autocast where the hardware has
    native bf16 and the task allows it (`Task.bf16`; 2× faster for the stacked MLP, 2-3× for the ConvNet on these
    CPUs; rewards move within seed noise), "bf16" or "fp32" force one. Weights, optimizer state and the update
    are always float32.
    `fidelity`: "full" trains every member to the end; "halving" stops, at 1/5 and 2/5 of the steps, the
    learning rates of a rule that cannot win and the rules far below the Adam/SGD curves (see `HALVING_MARGINS`;
    a stopped rule's reward is its best score when stopped, and its Evaluation says `stopped_at`).
    `extend_lrs`: while a rule's best lr is the smallest or largest tried, also try the next decade out (within
    `LR_LIMITS`), so no rule is judged on a truncated grid; `per_lr` lists every lr tried.
    `seeds`: score each rule on every seed (a list, or a count N: seeds `seed` … `seed` + N - 1, so `seeds=3` is
    0, 1, 2); the lr is chosen by the mean validation score over the seeds, and the reward is the mean of the seeds'
    scores at that one lr (see `Evaluation`).
    `progress(done, total)` is called as member-steps complete.

    A suite (`task` a list of tasks, names separated by commas, or a built-in suite name such as "transfer"):
    each rule is scored on every task, normalized to that task's tuned baselines and aggregated (`aggregate`
    mean, the default, or min); one `tasks.suite.SuiteEvaluation` per rule (see `tasks.suite`).
    Every argument is checked before anything trains: a bad one raises a ValueError naming it.
    """
    from optsearch.tasks.suite import Suite, evaluate_suite, suite_aggregate, suite_tasks

    single = isinstance(rules, str | Rule)
    items = [rules] if single else check_rules(rules)
    if progress is not None and not callable(progress):
        validate.refuse("progress", progress, "a function (done, total) or None", SettingsError)
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        validate.refuse("data_dir", data_dir, "a folder or file path, or None", SettingsError)
    tasks = suite_tasks(task)
    aggregate = suite_aggregate(tasks, aggregate)
    settings = Settings(task if tasks is None else tasks[0], PAPER_LRS if lrs is None else lrs, steps, batch_size,
                        seed, str(device), None if data_dir is None else str(data_dir), precision, fidelity, extend_lrs,
                        seeds)
    out = (evaluate_settings(items, settings, progress) if tasks is None
           else evaluate_suite(items, Suite.of(tasks, settings, aggregate), progress=progress))
    return out[0] if single else out


def check_rules(rules: object) -> list[str | Rule]:
    """A non-empty list of rules (Rule, rule text or zoo name); text that does not parse is left for `evaluate`
    to report as an `invalid` evaluation, so one bad rule never stops the others."""
    allowed = "a rule (a Rule, rule text or a zoo name such as 'adam') or a non-empty list of them"
    if not isinstance(rules, Sequence) or isinstance(rules, bytes) or not rules:
        validate.refuse("rules", rules, allowed, SettingsError)
    for k, rule in enumerate(rules):
        if not isinstance(rule, str | Rule):
            validate.refuse(f"rules[{k}]", rule, allowed, SettingsError)
    return list(rules)


HALVING_RUNGS = (1, 2)
"""Halving cuts at these validation checkpoints (of `population.CURVE_POINTS`: 1/5 and 2/5 of the steps), where
the curve is measured anyway and where the committed discovery stores let us simulate the cuts."""
HALVING_MARGINS = (0.2, 0.15)
"""A rule stops at a rung when its best live lr scores this far below the best baseline there. On the 2,000
trials of docs/discovery (mnist1d, 400 steps) these stop ~55% of the rules and none of the top 50."""
HALVING_KEEP = (1 / 3, 1 / 2)
"""A rule going on at a rung keeps at least this fraction of its live lrs, the best (6 → 2, then 2 → 1). Simulated
on the full runs of 200 rules (benchmarks/multifidelity.py --save, mnist1d, 400 steps): (1/3, 1/2) with
`population.LR_MARGIN` 0.02 changed no kept reward at 2.83× fewer member-steps; keeping 2 at the second rung
cost 2.63×; keeping 1 of 6 at the first changed 4 of 84. Stochastic rules are halved by lr too (exactly, through
`population._Shadow`): 3.85× fewer member-steps (the floors' reference run included), measured 2.48-2.55× the unique
evaluations per minute, with every kept reward full's; the time falls less than the member-steps since a step's
cost per call and per live rule (its update: a shadowed one still updates, and draws noise for, its full block)
does not fall with the members."""
FLOOR_RULES = ("adam", "sgd")
"""The baselines whose curves set the halving floors."""


def evaluate_settings(items: Sequence[str | Rule], settings: Settings,
                      progress: Progress | None = None) -> list[Evaluation]:
    """`evaluate` for validated `settings`: one Evaluation per item, in order (what workers call).

    Each seed trains every rule in one population; with `extend_lrs`, further passes of the same trainer (same
    seed, so the same init and minibatches) train only the next decade of the rules whose best lr is at an edge.
    """
    settings.check_device()
    s = settings.resolved()
    spec = get_task(s.task)
    bf16 = (spec.bf16 and fast_bf16(s.device)) if s.precision == "auto" else s.precision == "bf16"
    data = load_splits(s.task, s.data_path).to(s.device)
    if s.batch_size > len(data.y_train):
        raise ValueError(f"batch_size={s.batch_size} exceeds the {len(data.y_train)} training examples of {s.task}")

    rules: dict[Rule, _Tried] = {}
    evaluations: list[Evaluation | Rule] = []
    for item in items:
        try:
            rule = resolve(item)
        except Exception as error:  # any bad input is one invalid evaluation
            evaluations.append(Evaluation(str(item), s.task, 0.0, Status.INVALID, f"{type(error).__name__}: {error}",
                                          steps=s.steps, batch_size=s.batch_size, seed=s.seed,
                                          seeds=list(s.all_seeds)))
            continue
        rules.setdefault(rule, _Tried(s.all_seeds))
        evaluations.append(rule)
    total, done = 0, 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    pending = {rule: list(s.lrs) for rule in rules}
    while pending:
        total += s.steps * len(s.all_seeds) * sum(len(lrs) for lrs in pending.values())
        for seed in s.all_seeds:
            runs = [RuleRun(rule, lrs) for rule, lrs in pending.items()]
            halving = halving_policy(s.replace(seed=seed, seeds=None)) if s.fidelity == "halving" else None
            tell = None if progress is None else advance
            if spec.stacked:
                train_stacked(spec.model.sizes, data, runs, s.steps, s.batch_size, seed, bf16, tell, halving,
                              spec.checkpoint_val)
            else:
                train_sequential(spec.model, spec.scoring, data, runs, s.steps, s.batch_size, seed, bf16, tell,
                                 halving, spec.checkpoint_val)
            for run in runs:
                rules[run.rule].add(seed, run)
        pending = {rule: lrs for rule, tried in rules.items() if s.extend_lrs and (lrs := tried.next_lrs())}
    return [e if isinstance(e, Evaluation) else rules[e].summary(str(e), s) for e in evaluations]


@dataclass
class _Tried:
    """What one rule's passes found: per seed, a result for each learning rate tried, in the order tried."""

    seeds: tuple[int, ...]
    results: dict[int, list[LrResult]] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def add(self, seed: int, run: RuleRun) -> None:
        self.error = self.error or run.error
        self.results.setdefault(seed, []).extend(run.results)
        self.seconds += run.seconds

    def per_lr(self) -> list[LrResult]:
        """One result per learning rate: the seed's own, or the mean over seeds."""
        by_seed = [self.results[seed] for seed in self.seeds]
        return by_seed[0] if len(by_seed) == 1 else [_mean(list(rs)) for rs in zip(*by_seed, strict=True)]

    def best(self, per_lr: list[LrResult]) -> LrResult | None:
        """The best learning rate's result: among those trained to the end if any, else among those stopped."""
        trained = [r for r in per_lr if not r.diverged]
        finished = [r for r in trained if r.stopped_at is None] or trained
        return max(finished, key=lambda r: r.val_acc) if finished else None  # the first listed among ties

    def next_lrs(self) -> list[float]:
        """The next decade beyond each edge of the lrs tried where the best one sits (within LR_LIMITS)."""
        if self.error is not None:
            return []
        per_lr = self.per_lr()
        best = self.best(per_lr)
        if best is None or best.stopped_at is not None:
            return []
        tried = [r.lr for r in per_lr]
        low, high = min(tried), max(tried)
        out = []
        if best.lr == low and low / 10 >= LR_LIMITS[0] * (1 - 1e-9):
            out.append(float(f"{low / 10:.12g}"))
        if best.lr == high and high * 10 <= LR_LIMITS[1] * (1 + 1e-9):
            out.append(float(f"{high * 10:.12g}"))
        return out

    def summary(self, rule: str, s: Settings) -> Evaluation:
        ev = Evaluation(rule, s.task, 0.0, Status.INVALID, self.error, steps=s.steps, batch_size=s.batch_size,
                        seed=s.seed, wall_time=self.seconds, seeds=list(self.seeds))
        if self.error is not None:
            return ev
        ev.per_lr = self.per_lr()
        best = self.best(ev.per_lr)
        if best is None:
            ev.status = Status.DIVERGED
            ev.reason = f"every learning rate diverged (by step {max(r.diverged_at for r in ev.per_lr)})"
            return ev
        ev.status, ev.reward, ev.best_lr, ev.stopped_at = Status.OK, best.val_acc, best.lr, best.stopped_at
        j = ev.per_lr.index(best)
        ev.seed_rewards = [self.results[seed][j].val_acc for seed in self.seeds]
        ev.curve = [CurvePoint(step, a) for step, a in zip(curve_steps(s.steps), best.curve, strict=False)]
        return ev


def _mean(results: list[LrResult]) -> LrResult:
    """One learning rate's results on several seeds as one: mean scores; diverged or stopped if it was on any
    seed (at the earliest such step), so such an lr is chosen only if no other is trained to the end."""
    def first(steps: list[int | None]) -> int | None:
        return min((t for t in steps if t is not None), default=None)

    losses = [r.loss for r in results]
    curve_len = min(len(r.curve) for r in results)
    return LrResult(results[0].lr, statistics.fmean(r.val_acc for r in results),
                    statistics.fmean(r.test_acc for r in results),
                    None if None in losses else statistics.fmean(losses), first([r.diverged_at for r in results]),
                    [statistics.fmean(r.curve[i] for r in results) for i in range(curve_len)],
                    first([r.stopped_at for r in results]))


@lru_cache(maxsize=32)
def halving_policy(s: Settings) -> Halving:
    """The halving floors of single-seed settings `s`: the best baseline's validation score at each rung (over
    its learning rates) minus the rung's margin. Computed once per process and settings, so a rule's result
    never depends on the rules it is grouped with."""
    reference = evaluate_settings(list(FLOOR_RULES), s.replace(fidelity="full", extend_lrs=False))
    steps = curve_steps(s.steps)
    floors, fractions = {}, {}
    for rung, margin, fraction in zip(HALVING_RUNGS, HALVING_MARGINS, HALVING_KEEP, strict=True):
        if rung < len(steps):
            scores = [r.curve[rung - 1] for ev in reference for r in ev.per_lr if not r.diverged]
            floors[steps[rung - 1]] = max(scores, default=0.0) - margin
            fractions[steps[rung - 1]] = fraction
    return Halving(floors, fractions)
