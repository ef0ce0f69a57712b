"""What makes a search one search, and how much one session of it does.

A `SearchConfig` is written into a search's db and read back (older flat forms too) to refuse resuming it under
another config; a `Schedule` paces one session and may change on resume.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from optsearch.engine.store import Store, StoreError
from optsearch.strategies import Strategy, make_strategy
from optsearch.tasks.settings import (
    MAX_SEED,
    PAPER_LRS,
    Settings,
    SettingsError,
    check_choice,
    check_int_in,
    check_positive_int,
)
from optsearch.tasks.suite import DEFAULT_AGGREGATE, Suite

SEARCH_TASK = "transfer"
"""What a search scores rules on when given no task: the `transfer` suite (see `tasks.suite.SUITES`), the reward
that best predicted held-out results on the proxy-validity panel (docs/results.md §6). `evaluate` keeps the one
cheap task `DEFAULT_TASK`."""
SEARCH_FIDELITY = "halving"
"""A search stops hopeless rules and learning rates early (kept rules get full fidelity's rewards exactly)."""
SEARCH_EXTENDS_LRS = True
"""A search tries the next decade while a rule's best learning rate is at the grid's edge."""
DUPLICATE_PENALTY = 1.0
"""Subtracted from a re-sampled rule's stored reward when it is told to the strategy (see `search`). 0.1 let PPO
collapse onto a few rules on both rewards measured (docs/results.md §5 on mnist1d_large; §6, 2 seeds × 400 unique
rules on the transfer suite: new rules per sample fell to 0.07 and 0.002 in the last quarter); 0.5 and 1.0 kept
sampling new rules (0.67-0.82; the count mode at 0.1: 0.32 and 0.74) and all found rewards alike; 1.0 also freed
§5's collapsed controller."""
PENALTY_MODES: tuple[str, ...] = ("constant", "count")
"""constant: every re-sample loses `duplicate_penalty`; count: it loses `duplicate_penalty` times how often the rule
was sampled before (at least once), so a controller that keeps drawing one rule is pushed off it harder each time."""
MAY_DIFFER_ON_RESUME = ("device", "data_dir")
"""Settings a resumed search may change: where it trains, not what it computes."""


@dataclass(frozen=True)
class SearchConfig:
    """What makes two searches the same search: a db refuses to resume under a different config.

    `settings` score the rules on a task; an objective search has none and names its `objective` instead.
    A search on a suite names its tasks in `suite` (the first is `settings`' task; the others share its grid,
    budget and seed) and how their normalized scores `aggregate` (see `tasks.suite`).
    One `seed` drives both the strategy and the evaluation.
    """

    settings: Settings | None
    objective: str | None = None
    strategy: str = "ppo"
    seed: int = 0
    groups: int = 2
    decays: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)
    suite: tuple[str, ...] | None = None
    aggregate: str = DEFAULT_AGGREGATE

    def __post_init__(self) -> None:
        if (self.settings is None) == (self.objective is None):
            raise SettingsError("give a task (its Settings) or an objective (a callable Rule -> float), not both")
        check_int_in("seed", self.seed, 0, MAX_SEED)
        if self.settings is not None and self.settings.seed != self.seed:
            raise SettingsError(f"seed: got {self.seed} for the strategy and {self.settings.seed} in the settings; "
                                "allowed: one seed for both")
        check_positive_int("groups", self.groups)
        if self.suite is not None:
            if self.settings is None or self.suite[0] != self.settings.task:
                raise SettingsError("suite: a suite search's settings are its first task's")
            Suite.of(self.suite, self.settings, self.aggregate)  # raises SettingsError naming a bad task or aggregate

    @property
    def evaluation(self) -> Settings | Suite | None:
        """What scores a rule: the settings of one task, the suite, or None for an objective."""
        if self.suite is None:
            return self.settings
        return Suite.of(self.suite, self.settings, self.aggregate)

    def make_strategy(self) -> Strategy:
        return make_strategy(self.strategy, groups=self.groups, seed=self.seed, decays=self.decays,
                             **self.strategy_options)

    def to_json(self) -> dict[str, Any]:
        """Flat, as stores written before `Settings` existed (the committed docs/discovery dbs) hold it."""
        evaluation = (self.settings.to_json() if self.settings is not None
                      else dict.fromkeys(f.name for f in fields(Settings)))
        return {**evaluation, "objective": self.objective, "strategy": self.strategy, "seed": self.seed,
                "groups": self.groups, "decays": self.decays,
                "strategy_options": json.loads(json.dumps(self.strategy_options)),
                **({} if self.suite is None else {"suite": list(self.suite), "aggregate": self.aggregate})}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchConfig:
        """Read `to_json` or the older flat form (no device/data_dir; lrs null for the paper's grid)."""
        settings = None if d.get("task") is None else Settings(
            d["task"], PAPER_LRS if d.get("lrs") is None else tuple(d["lrs"]), d.get("steps"), d.get("batch_size"),
            d["seed"], d.get("device") or "cpu", d.get("data_dir"), d.get("precision", "auto"),
            d.get("fidelity", "full"), d.get("extend_lrs", False), d.get("seeds") and tuple(d["seeds"]))
        return cls(settings, d.get("objective"), d["strategy"], d["seed"], d["groups"], d["decays"],
                   d.get("strategy_options", {}), d.get("suite") and tuple(d["suite"]),
                   d.get("aggregate", DEFAULT_AGGREGATE))

    def differences(self, other: SearchConfig) -> list[str]:
        """'key: db has X, this search has Y' for each fact that makes `other` (the db's) another search."""
        mine, theirs = self.to_json(), other.to_json()
        return [f"{k}: db has {theirs.get(k)!r}, this search has {mine.get(k)!r}" for k in {**mine, **theirs}
                if k not in MAY_DIFFER_ON_RESUME and theirs.get(k) != mine.get(k)]


def stored_config(store: Store) -> SearchConfig | None:
    """The search config in `store` (None if it holds none); one that cannot be read is a StoreError naming the db."""
    stored = store.get_meta("config")
    if stored is None:
        return None
    try:
        return SearchConfig.from_json(stored)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{store.path}: its stored search config cannot be read ({type(exc).__name__}: {exc}); "
                         "allowed: a db written by optsearch search") from None


@dataclass(frozen=True)
class Schedule:
    """How much a search session does and how it paces asks; not part of the config, so it may change on resume.

    `batch` rules are asked per round (None: 8 × workers) and `ahead` rounds are asked before the oldest round's
    rewards are told. Sampling stops at exactly `max_samples` (None: 20 × budget), the last ask cut to fit.
    """

    budget: int
    batch: int | None = None
    ahead: int = 1
    duplicate_penalty: float = DUPLICATE_PENALTY
    max_samples: int | None = None
    penalty_mode: str = "constant"

    def __post_init__(self) -> None:
        check_positive_int("budget", self.budget)
        for name in ("batch", "max_samples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if isinstance(self.ahead, bool) or not isinstance(self.ahead, int) or self.ahead < 0:
            raise SettingsError(f"ahead: got {self.ahead!r}; allowed: a whole number >= 0")
        if not (isinstance(self.duplicate_penalty, int | float) and math.isfinite(self.duplicate_penalty)
                and self.duplicate_penalty >= 0):
            raise SettingsError(f"duplicate_penalty: got {self.duplicate_penalty!r}; allowed: a finite number >= 0")
        check_choice("penalty_mode", self.penalty_mode, PENALTY_MODES)

    def penalty(self, earlier: int) -> float:
        """What a re-sample of a rule sampled `earlier` times before loses when told (see `PENALTY_MODES`)."""
        return self.duplicate_penalty * (max(1, earlier) if self.penalty_mode == "count" else 1)
