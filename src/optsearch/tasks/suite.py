"""Task suites: one reward over several tasks, so a search selects rules that help more than one child network.

Each task's score is normalized against that task's tuned baselines (`SUITE_BASELINES`, same grid, budget and
seed): normalized = (score − floor) / (best baseline − floor), where the floor is the worst baseline's score.
The floor is the worst baseline rather than chance level because it is defined for every task and metric (your own
tasks included, where chance level is unknown) and puts the scale where rules differ: 0 is "as good as the worst
hand-designed optimizer", 1 "as good as the best". The reward aggregates the normalized scores, `mean` by default
(every task moves the reward, so a controller learns from a gain on any one of them; `min` rewards the weakest task
only) until the proxy-validity panel (`optsearch panel`) measures which predicts held-out results better.

Tasks are trained in the order given, so put the cheapest first (the built-in suites do): a rule whose normalized
score on the first task is below `SKIP_BELOW` is not trained on the others; each task it skipped counts its first
task's normalized score, so its reward is that score under either aggregate.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from optsearch.dsl import Rule
from optsearch.tasks.evaluate import Progress, evaluate_settings
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import Settings, SettingsError, check_choice

SUITES: dict[str, tuple[str, ...]] = {"transfer": ("fashion_tiny_conv", "kjv_tiny_lstm")}
"""Built-in suites by name, cheapest task first. `transfer` is a small ConvNet and a small LSTM, the search's default
reward: on the proxy-validity panel (docs/results.md §6) its mean predicted the held-out mean rank of 49 rules best
of the rewards tried (Spearman +0.55, against −0.03 for `mnist1d_large`, which ranks the language models against
their order). The MLP is left out: in the suite it swamped the mean (the rules beat its baselines by many times
their spread) and, as a cheap first gate, it dropped rules that are good held out."""
SUITE_BASELINES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop", "adam * cd", "m * cd")
"""The tuned baselines each task's score is normalized against (zoo names and rules; `cd` is cosine decay)."""
AGGREGATES: tuple[str, ...] = ("mean", "min")
DEFAULT_AGGREGATE = "mean"
LOWEST = -1.0
"""Normalized scores are clipped from below here: a rule that diverges on a task (raw score 0) would otherwise score
(0 − floor) / spread, often −5 or less, and one such task would swamp every other in a mean."""
SKIP_BELOW = -0.5
"""A rule whose normalized score on the suite's first task is below this (half the baselines' spread under the
worst baseline) is not trained on the other tasks. Measured (benchmarks/suite_skip.py defaults: mnist1d then digits,
200 steps, 48 random-strategy rules and 6 zoo rules, seed 0, 2 cores): it skipped 41 of 54 rules, saved 19% of the
training time with the cheaper task second (more when the later tasks cost more), and changed no ranking (Spearman
of the rewards with and without it 1.000; the top 10 the same)."""
MIN_SPREAD = 0.01
"""The denominator's least value: baselines that all tie on a task cannot scale it (noise would be blown up)."""


def suite_tasks(task: Any) -> tuple[str, ...] | None:
    """The tasks of a suite named by `task`: a list of task names, a built-in suite name (`SUITES`) or names
    separated by commas; None when `task` names a single task."""
    if isinstance(task, str):
        if task in SUITES:
            return SUITES[task]
        if "," not in task:
            return None
        task = task.split(",")
    if isinstance(task, Sequence) and not isinstance(task, str):
        names = tuple(str(t).strip() for t in task)
        return names if len(names) != 1 else None
    return None


def suite_aggregate(tasks: tuple[str, ...] | None, aggregate: str | None) -> str:
    """The aggregate of a suite (None: the default); one given for a single task is refused."""
    if tasks is None and aggregate is not None:
        raise SettingsError(f"aggregate: got {aggregate!r} for a single task; allowed: only with a suite of tasks")
    return aggregate or DEFAULT_AGGREGATE


@dataclass(frozen=True)
class Suite:
    """Several tasks scored together: one validated single-task `Settings` per task, and how scores aggregate."""

    settings: tuple[Settings, ...]
    aggregate: str = DEFAULT_AGGREGATE

    def __post_init__(self) -> None:
        tasks = [s.task for s in self.settings]
        if len(tasks) < 2 or len(set(tasks)) != len(tasks) or not all(tasks):
            raise SettingsError(f"task: got the suite {','.join(tasks)!r}; allowed: two or more distinct tasks")
        check_choice("aggregate", self.aggregate, AGGREGATES)

    @classmethod
    def of(cls, tasks: Sequence[str], base: Settings, aggregate: str = DEFAULT_AGGREGATE) -> Suite:
        """`base` (grid, budget, seeds, device...) on each of `tasks`; `steps` None keeps each task's own."""
        return cls(tuple(base.replace(task=task) for task in tasks), aggregate)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(s.task for s in self.settings)

    @property
    def name(self) -> str:
        return ",".join(self.tasks)


@dataclass(frozen=True)
class Reference:
    """A task's tuned baselines under some settings: each baseline's reward, hence the best and the floor."""

    task: str
    rewards: tuple[tuple[str, float], ...]  # (baseline, reward), in `SUITE_BASELINES` order

    @property
    def best(self) -> float:
        return max(r for _, r in self.rewards)

    @property
    def floor(self) -> float:
        return min(r for _, r in self.rewards)

    def normalize(self, score: float) -> float:
        """(score − floor) / (best − floor), the spread at least `MIN_SPREAD`, clipped below at `LOWEST`."""
        return max(LOWEST, (score - self.floor) / max(self.best - self.floor, MIN_SPREAD))


def reference_of(settings: Settings, progress: Progress | None = None) -> Reference:
    """Train the suite baselines on `settings`' task (at full fidelity: the reference must not be cut short)."""
    evals = evaluate_settings(list(SUITE_BASELINES), settings.replace(fidelity="full"), progress)
    return Reference(settings.task, tuple((name, ev.reward) for name, ev in zip(SUITE_BASELINES, evals, strict=True)))


@lru_cache(maxsize=32)
def cached_reference(settings: Settings) -> Reference:
    """`reference_of`, once per process and settings (a search keeps them in its store instead)."""
    return reference_of(settings)


@dataclass
class TaskScore:
    """One task of a suite evaluation: the raw reward (None: not trained, skipped after the first task), the
    reference it was normalized against and the normalized score that entered the aggregate."""

    task: str
    raw: float | None
    status: str
    best: float
    floor: float
    normalized: float
    best_lr: float | None = None


@dataclass
class SuiteEvaluation:
    """A rule's reward on a suite: the aggregate of its tasks' normalized scores, and each task's score.

    status: invalid if the rule cannot run, diverged if it diverged on every task trained, else ok; an invalid or
    everywhere-diverged rule's reward is `LOWEST`. `wall_time` sums the tasks' training time of this rule.
    """

    rule: str
    suite: str
    aggregate: str
    reward: float
    status: Status
    scores: list[TaskScore] = field(default_factory=list)
    reason: str | None = None
    wall_time: float = 0.0

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def skipped(self) -> list[str]:
        return [s.task for s in self.scores if s.raw is None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SuiteEvaluation:
        return cls(**{**d, "scores": [TaskScore(**s) for s in d.get("scores", [])]})


def score_header(task: str) -> str:
    """A per-task column's title in tables (CLI, report)."""
    return f"{task} (raw / norm)"


def score_cell(raw: float | None, normalized: float) -> str:
    """A per-task cell: the raw score (or 'skipped') and the normalized one."""
    return f"{'skipped' if raw is None else f'{raw:.4f}'} / {normalized:+.2f}"


def aggregate(values: Sequence[float], how: str) -> float:
    return statistics.fmean(values) if how == "mean" else min(values)


def evaluate_suite(items: Sequence[str | Rule], suite: Suite, references: Mapping[str, Reference] | None = None,
                   progress: Progress | None = None) -> list[SuiteEvaluation]:
    """Score each item on every task of `suite`, normalized to `references` (task -> Reference; computed once per
    process where missing). A rule below `SKIP_BELOW` on the first task is not trained on the others."""
    refs = {s.task: (references or {}).get(s.task) or cached_reference(s) for s in suite.settings}
    first, *rest = suite.settings
    per_task: dict[str, list[Evaluation | None]] = {first.task: evaluate_settings(items, first, progress)}
    going = [i for i, on in enumerate(goes_on(per_task[first.task], refs[first.task])) if on]
    for settings in rest:
        evals = evaluate_settings([items[i] for i in going], settings, progress) if going else []
        row: list[Evaluation | None] = [None] * len(items)
        for i, ev in zip(going, evals, strict=True):
            row[i] = ev
        per_task[settings.task] = row
    return suite_scores(per_task, refs, suite)


def goes_on(first: Sequence[Evaluation], reference: Reference, below: float = SKIP_BELOW) -> list[bool]:
    """Whether each rule, so scored on the suite's first task, is trained on the others (not `below` there)."""
    return [ev.status != Status.INVALID and _normalized(ev, reference) >= below for ev in first]


def suite_scores(per_task: Mapping[str, Sequence[Evaluation | None]], refs: Mapping[str, Reference],
                 suite: Suite) -> list[SuiteEvaluation]:
    """Each rule's suite evaluation from its evaluation on every task of `suite` (None: skipped there)."""
    n = len(per_task[suite.tasks[0]])
    return [_summary(i, per_task, refs, suite, _normalized(per_task[suite.tasks[0]][i], refs[suite.tasks[0]]))
            for i in range(n)]


def _normalized(ev: Evaluation, reference: Reference) -> float:
    return reference.normalize(ev.reward) if ev.status == Status.OK else LOWEST


def _summary(i: int, per_task: Mapping[str, list[Evaluation | None]], refs: Mapping[str, Reference], suite: Suite,
             head: float) -> SuiteEvaluation:
    first = per_task[suite.tasks[0]][i]
    scores = []
    for task in suite.tasks:
        ev, ref = per_task[task][i], refs[task]
        if ev is None:
            scores.append(TaskScore(task, None, "skipped", ref.best, ref.floor, head))
        else:
            scores.append(TaskScore(task, ev.reward, ev.status.value, ref.best, ref.floor, _normalized(ev, ref),
                                    ev.best_lr))
    trained = [per_task[task][i] for task in suite.tasks if per_task[task][i] is not None]
    wall = sum(ev.wall_time for ev in trained)
    if first.status == Status.INVALID:
        return SuiteEvaluation(first.rule, suite.name, suite.aggregate, LOWEST, Status.INVALID, scores, first.reason,
                               wall)
    if all(ev.status == Status.DIVERGED for ev in trained):
        return SuiteEvaluation(first.rule, suite.name, suite.aggregate, LOWEST, Status.DIVERGED, scores,
                               first.reason, wall)
    reward = aggregate([s.normalized for s in scores], suite.aggregate)
    return SuiteEvaluation(first.rule, suite.name, suite.aggregate, reward, Status.OK, scores, None, wall)
