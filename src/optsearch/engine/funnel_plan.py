"""What a funnel trains: its config, its stages (task settings and seeds) and its plan, stored in the db's meta.

The plan is made from the search's stored config and trials, before anything is written, and read back by every
rerun and by the report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optsearch.dsl import Rule
from optsearch.engine.config import stored_config
from optsearch.engine.store import BASELINE, Store, StoreError, Trial
from optsearch.optim.zoo import resolve
from optsearch.tasks.results import Status
from optsearch.tasks.settings import (
    MAX_SEED,
    Settings,
    SettingsError,
    check_int_in,
    check_lrs,
    check_positive_int,
)
from optsearch.tasks.suite import SUITE_BASELINES, Suite

PROXY, TRANSFER, SCORE = "proxy", "transfer", "score"
"""The stages of a stored row: 2 (the search's task over fresh seeds), 3 (held-out tasks: the learning-rate grid
on the tuning seeds) and 3's scoring (the tuned rate alone on fresh seeds)."""
FUNNEL_BASELINES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop", "adam * cd", "m * cd")
"""The hand-designed optimizers every stage compares against (zoo names or rules; `momentum` is the rule `m`;
`* cd` is cosine decay: a rule with a decay operand must face scheduled baselines)."""
REFERENCE_RULES: tuple[str, ...] = ("powersign-ld", "powersign-cd", "addsign-ld", "addsign-cd", "nos12")
"""The paper's best rules, trained beside the baselines in every stage to show where a search's best stands
against them; never a verdict's baseline and never a found rule."""
DEFAULT_TASKS: tuple[str, ...] = ("fashion_mnist_conv", "kjv_char_lstm")
"""Stage 3's held-out tasks: a ConvNet and a language model, other families than the MLP proxies."""

META_KEY = "funnel"
MAX_SEEDS = 10_000


@dataclass(frozen=True)
class FunnelConfig:
    """What a funnel is asked to do. `tasks` None: DEFAULT_TASKS except the search's own (a suite search's: any
    of its suite). Stage 3 tunes each rule's learning rate on `tune_seeds` seeds, then scores that rate alone on
    `score_seeds` other seeds, which alone decide its verdicts (the tuning seeds chose the rate, so their scores
    flatter it). `score_seeds` None is a funnel stored before that protocol, scored on its tuning seeds. `steps` and
    `lrs` apply to stage 3 (stage 2 runs the search's settings unchanged): one step count for every task or one per
    task name; None keeps each task's own budget and the search's learning-rate grid. `also`: rules from elsewhere
    (zoo names or rule texts, e.g. a control search's best) that go through every stage as found rules and always
    reach stage 3, beside the `finalists`."""

    top: int = 20
    seeds: int = 10
    finalists: int = 10
    tasks: tuple[str, ...] | None = None
    tune_seeds: int = 3
    score_seeds: int | None = 10
    steps: int | Mapping[str, int] | None = None
    lrs: tuple[float, ...] | None = None
    baselines: tuple[str, ...] = FUNNEL_BASELINES
    references: tuple[str, ...] = REFERENCE_RULES
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_positive_int("top", self.top)
        check_positive_int("finalists", self.finalists)
        check_int_in("seeds", self.seeds, 2, MAX_SEEDS)  # a paired test needs two seeds
        check_int_in("tune_seeds", self.tune_seeds, 1, MAX_SEEDS)
        if self.score_seeds is not None:
            check_int_in("score_seeds", self.score_seeds, 2, MAX_SEEDS)
        if self.tasks is not None and not self.tasks:
            raise SettingsError("tasks: got none; allowed: one or more task names (see `optsearch tasks`)")
        if not self.baselines:
            raise SettingsError("baselines: got none; allowed: zoo names or rule texts, e.g. sgd, adam")
        if self.lrs is not None:
            object.__setattr__(self, "lrs", check_lrs(self.lrs))
        if isinstance(self.steps, Mapping):
            for task, n in self.steps.items():
                check_positive_int(f"steps for {task}", n)
        elif self.steps is not None:
            check_positive_int("steps", self.steps)

    def to_json(self) -> dict[str, Any]:
        steps = dict(self.steps) if isinstance(self.steps, Mapping) else self.steps
        return {"top": self.top, "seeds": self.seeds, "finalists": self.finalists,
                "tasks": None if self.tasks is None else list(self.tasks),
                "transfer_seeds": self.tune_seeds,  # its name before score seeds: old and new plans read alike
                "score_seeds": self.score_seeds, "steps": steps, "lrs": None if self.lrs is None else list(self.lrs),
                "baselines": list(self.baselines), "references": list(self.references), "also": list(self.also)}


@dataclass(frozen=True)
class Stage:
    """Where a stage trains: `settings` (their seed aside) at each of `seeds`. A held-out stage with `score_seeds`
    tunes on `seeds` and then trains each rule's tuned rate alone on `score_seeds` (stage SCORE)."""

    name: str
    settings: Settings
    seeds: tuple[int, ...]
    score_seeds: tuple[int, ...] = ()

    @property
    def task(self) -> str:
        return self.settings.task

    def row_key(self, rule: Rule, seed: int) -> tuple[str, str, str, int, str]:
        """The `StoredEvaluation.key` of `rule`'s row at `seed` in this stage."""
        return row_key(self.name, self.settings, rule, seed)

    def score_settings(self, lr: float) -> Settings:
        """The settings a rule tuned to `lr` is scored at: this stage's, with `lr` the whole grid."""
        return self.settings.replace(lrs=(lr,), extend_lrs=False)

    def score_key(self, rule: Rule, seed: int, lr: float) -> tuple[str, str, str, int, str]:
        """The `StoredEvaluation.key` of `rule`'s score row at `seed`, tuned to `lr`."""
        return row_key(SCORE, self.score_settings(lr), rule, seed)


@dataclass
class Plan:
    """What one funnel trains: the proxy stage, the transfer stages, the baselines and the reference rules
    (display name -> rule), the search's top rules and their stage-1 rewards (fingerprint -> reward). Stored in the
    db's meta, so a report shows exactly what the funnel did even if the search goes on. A suite search's funnel
    has one stage 2 per task of the suite in `suite` (the first is `proxy`), scored as the search's `aggregate`;
    a single-task search's has none and its aggregate is None. `also`: the rules from elsewhere that stage 2
    re-scores beside the candidates and that always reach stage 3."""

    config: FunnelConfig
    proxy: Stage
    transfer: list[Stage]
    baselines: dict[str, Rule]
    candidates: list[Rule]
    stage1: dict[str, float]
    references: dict[str, Rule] = field(default_factory=dict)
    suite: list[Stage] = field(default_factory=list)
    aggregate: str | None = None
    also: list[Rule] = field(default_factory=list)

    @property
    def rescored(self) -> list[Rule]:
        """The found rules stage 2 trains: the search's top rules, then the `also` rules."""
        return [*self.candidates, *self.also]

    @property
    def proxies(self) -> list[Stage]:
        """Stage 2's stages: one per task of the suite, or the search's task alone."""
        return self.suite or [self.proxy]

    def to_json(self) -> dict[str, Any]:
        suite = {"suite": [_stage_json(s) for s in self.suite], "aggregate": self.aggregate} if self.suite else {}
        return {"config": self.config.to_json(), "proxy": _stage_json(self.proxy),
                "transfer": [_stage_json(s) for s in self.transfer],
                "baselines": {name: list(r.tokens) for name, r in self.baselines.items()},
                "candidates": [list(r.tokens) for r in self.candidates], "stage1": self.stage1,
                "references": {name: list(r.tokens) for name, r in self.references.items()},
                "also": [list(r.tokens) for r in self.also], **suite}

    def entrants(self, found: Sequence[Rule]) -> list[Entrant]:
        """The baselines, the reference rules, then the `found` rules: what a stage trains (an `also` rule is
        labelled so)."""
        also = {r.fingerprint for r in self.also}
        return [*(Entrant(r, name, BASELINE) for name, r in self.baselines.items()),
                *(Entrant(r, name, REFERENCE) for name, r in self.references.items()),
                *(Entrant(r, f"{r} (also)" if r.fingerprint in also else None, FOUND) for r in found)]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        c = d["config"]  # a plan stored before reference rules, score seeds or `also` has none
        config = FunnelConfig(c["top"], c["seeds"], c["finalists"], None if c["tasks"] is None else tuple(c["tasks"]),
                              c["transfer_seeds"], c.get("score_seeds"), c["steps"],
                              None if c["lrs"] is None else tuple(c["lrs"]), tuple(c["baselines"]),
                              tuple(c.get("references", ())), tuple(c.get("also", ())))
        return cls(config, _stage(d["proxy"]), [_stage(s) for s in d["transfer"]],
                   {name: Rule.from_tokens(t) for name, t in d["baselines"].items()},
                   [Rule.from_tokens(t) for t in d["candidates"]], d["stage1"],
                   {name: Rule.from_tokens(t) for name, t in d.get("references", {}).items()},
                   [_stage(s) for s in d.get("suite", [])], d.get("aggregate"),
                   [Rule.from_tokens(t) for t in d.get("also", [])])


REFERENCE, FOUND = "reference", "found"
"""An entrant's role beside BASELINE (the verdicts are against the best of those): a reference rule (shown, never
judged against) or a rule the search found (judged)."""


@dataclass(frozen=True)
class Entrant:
    """A rule a stage trains, its display name (None for a found rule of the search) and its role."""

    rule: Rule
    name: str | None
    role: str


def settings_key(settings: Settings) -> str:
    """What makes two results comparable, seed aside: task, lr grid, budget, precision (not where it ran)."""
    s = settings.resolved().to_json()
    for name in ("seed", "device", "data_dir"):
        s.pop(name)
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]


def row_key(stage: str, settings: Settings, rule: Rule, seed: int) -> tuple[str, str, str, int, str]:
    """The `StoredEvaluation.key` of `rule`'s row trained with `settings` at `seed` in `stage`."""
    return rule.fingerprint, stage, settings.task, seed, settings_key(settings)


def read_plan(db: str | Path, config: FunnelConfig) -> Plan:
    """The plan of a funnel on the search in `db`, read without writing (no lock: a search may still run)."""
    if Path(db).is_dir() or not Path(db).is_file():
        raise StoreError(f"db: no search at {db}; allowed: the SQLite file of a finished search")
    with Store(db, readonly=True) as store:
        stored = stored_config(store)
        trials = store.trials(order="reward")
    if stored is None:
        raise StoreError(f"db: {db} holds no search config; allowed: the db of a search on a task")
    settings = stored.settings
    if settings is None:
        raise StoreError(f"db: {db} holds a search of an objective, which has no task to re-train on; "
                         "allowed: the db of a search on a task")
    evaluation = stored.evaluation
    return make_plan(config, settings, trials, evaluation if isinstance(evaluation, Suite) else None)


def make_plan(config: FunnelConfig, settings: Settings, trials: Sequence[Trial], suite: Suite | None = None) -> Plan:
    """Stage 2 on `settings` (the search's), or on each task of its `suite`; stage 3 on the held-out tasks (by
    default none of the search's); candidates are the `top` best ok trials found by the search (trials best
    first), baselines, reference rules and their equals excluded, then the `also` rules not among them."""
    taken: set[str] = set()
    baselines, references = _distinct(config.baselines, taken), _distinct(config.references, taken)
    if suite is not None:  # a suite's reward is normalized against these: stage 2 must train them all
        have = {r.fingerprint for r in baselines.values()}
        missing = [name for name in SUITE_BASELINES if resolve(name).fingerprint not in have]
        if missing:
            raise SettingsError(f"baselines: a suite search's reward normalizes each task against "
                                f"{', '.join(SUITE_BASELINES)}; missing: {', '.join(missing)}; allowed: baselines "
                                "that include all of them")
    found = [t for t in trials if t.status == Status.OK and t.strategy != BASELINE and t.fingerprint not in taken]
    if not found:
        raise StoreError("db: the search has no rule that trained (status ok) to re-score yet")
    candidates = [Rule.from_tokens(t.tokens) for t in found[: config.top]]
    also = list(_distinct(config.also, taken | {r.fingerprint for r in candidates}).values())
    base = settings.seed + 1  # fresh seeds: the search's own seed chose the candidates
    scored = base + config.tune_seeds  # the score seeds follow the tuning seeds: disjoint from them
    if max(base + config.seeds, scored + (config.score_seeds or 0)) > MAX_SEED:
        raise SettingsError(f"seed: the search's seed {settings.seed} leaves no room for fresh seeds")
    tune, score = tuple(range(base, scored)), tuple(range(scored, scored + (config.score_seeds or 0)))
    searched = suite.tasks if suite is not None else (settings.task,)
    tasks = config.tasks if config.tasks is not None else tuple(t for t in DEFAULT_TASKS if t not in searched)
    per_task = steps_per_task(config.steps, tasks)
    # stage 3 extends the grid at its edges (as the search does): a baseline whose best lr is the grid's last is
    # not tuned, and a rule must not win because its scale suits the grid better than a baseline's does
    lrs = settings.lrs if config.lrs is None else config.lrs
    transfer = [Stage(TRANSFER, Settings(task, lrs, per_task.get(task), None, 0, settings.device, None,
                                         settings.precision, extend_lrs=True), tune, score)
                for task in dict.fromkeys(tasks)]
    # stage 2 repeats the search's settings (each suite task's) at full fidelity and never skips a task, one seed
    # per job (the funnel pairs seeds itself)
    seeds = tuple(range(base, base + config.seeds))
    proxies = [Stage(PROXY, s.replace(seed=0, seeds=None, fidelity="full"), seeds)
               for s in (suite.settings if suite is not None else (settings,))]
    return Plan(config, proxies[0], transfer, baselines, candidates, {t.fingerprint: t.reward for t in found},
                references, proxies if suite is not None else [], None if suite is None else suite.aggregate, also)


def steps_per_task(steps: int | Mapping[str, int] | None, tasks: Sequence[str]) -> dict[str, int | None]:
    """Held-out task -> its budget from `steps` (one for every task, or task -> budget; a task left out, or None,
    trains its own); a budget given for a task not among `tasks` is refused."""
    per_task = dict(steps) if isinstance(steps, Mapping) else dict.fromkeys(tasks, steps)
    unknown = sorted(set(per_task) - set(tasks))
    if unknown:
        raise SettingsError(f"steps: given for {', '.join(map(repr, unknown))}, which is not among the tasks "
                            f"{', '.join(tasks)}")
    return per_task


def _distinct(names: Sequence[str], taken: set[str]) -> dict[str, Rule]:
    """Display name -> rule for `names`, skipping any equal to an earlier one or to one in `taken` (updated)."""
    rules: dict[str, Rule] = {}
    for name in names:
        rule = resolve(name)
        if rule.fingerprint not in taken:
            rules[name] = rule
            taken.add(rule.fingerprint)
    return rules


def _stage_json(stage: Stage) -> dict[str, Any]:
    return {"name": stage.name, "settings": stage.settings.to_json(), "seeds": list(stage.seeds),
            "score_seeds": list(stage.score_seeds)}


def _stage(d: dict[str, Any]) -> Stage:
    return Stage(d["name"], Settings.from_json(d["settings"]), tuple(d["seeds"]), tuple(d.get("score_seeds", ())))
