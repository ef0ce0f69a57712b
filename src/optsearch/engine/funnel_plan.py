"""What a funnel trains: its config, its stages (task settings and seeds) and its plan, stored in the db's meta.

The plan is made from the search's stored config and trials, before anything is written, and read back by every
rerun and by the report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

PROXY, TRANSFER = "proxy", "transfer"
"""The stages of a stored row: 2 (the search's task over fresh seeds) and 3 (held-out tasks)."""
FUNNEL_BASELINES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop")
"""The hand-designed optimizers every stage compares against (zoo names; `momentum` is the rule `m`)."""
DEFAULT_TASKS: tuple[str, ...] = ("fashion_mnist_conv", "kjv_char_lstm")
"""Stage 3's held-out tasks: a ConvNet and a language model, other families than the MLP proxies."""

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

    def entrants(self, found: Sequence[Rule]) -> list[tuple[Rule, str | None]]:
        """The baselines (with their display names), then the `found` rules (name None): what a stage trains."""
        return [*((r, name) for name, r in self.baselines.items()), *((r, None) for r in found)]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        c = d["config"]
        config = FunnelConfig(c["top"], c["seeds"], c["finalists"], None if c["tasks"] is None else tuple(c["tasks"]),
                              c["transfer_seeds"], c["steps"], None if c["lrs"] is None else tuple(c["lrs"]),
                              tuple(c["baselines"]))
        return cls(config, _stage(d["proxy"]), [_stage(s) for s in d["transfer"]],
                   {name: Rule.from_tokens(t) for name, t in d["baselines"].items()},
                   [Rule.from_tokens(t) for t in d["candidates"]], d["stage1"])


def settings_key(settings: Settings) -> str:
    """What makes two results comparable, seed aside: task, lr grid, budget, precision (not where it ran)."""
    s = settings.resolved().to_json()
    for name in ("seed", "device", "data_dir"):
        s.pop(name)
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]


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
        raise SettingsError(f"steps: given for {', '.join(map(repr, unknown))}, which is not among the tasks "
                            f"{', '.join(tasks)}")
    # stage 3 extends the grid at its edges (as the search does): a baseline whose best lr is the grid's last is
    # not tuned, and a rule must not win because its scale suits the grid better than a baseline's does
    lrs = settings.lrs if config.lrs is None else config.lrs
    transfer = [Stage(TRANSFER, Settings(task, lrs, per_task.get(task), None, 0, settings.device, None,
                                         settings.precision, extend_lrs=True),
                      tuple(range(base, base + config.transfer_seeds))) for task in dict.fromkeys(tasks)]
    # stage 2 repeats the search's settings at full fidelity, one seed per job (the funnel pairs seeds itself)
    proxy = Stage(PROXY, settings.replace(seed=0, seeds=None, fidelity="full"), tuple(range(base, base + config.seeds)))
    return Plan(config, proxy, transfer, baselines, candidates, {t.fingerprint: t.reward for t in found})


def _stage_json(stage: Stage) -> dict[str, Any]:
    return {"name": stage.name, "settings": stage.settings.to_json(), "seeds": list(stage.seeds)}


def _stage(d: dict[str, Any]) -> Stage:
    return Stage(d["name"], Settings.from_json(d["settings"]), tuple(d["seeds"]))
