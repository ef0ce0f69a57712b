"""The search loop: ask → fingerprint/dedup/reject → evaluate on an executor → store → tell → checkpoint.

Every finished trial is written as it arrives; the strategy is checkpointed after each tell. A search
resumed from its db re-asks from the last checkpoint, finds the finished rules by fingerprint in the
store and never trains them again, and stops at the budget of unique evaluations.

Everything a search is given is checked before its db is opened, so bad input never leaves a db behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from optsearch.dsl import Rule, parse, rejection
from optsearch.engine.executors import (
    EvalJob,
    Executor,
    check_executor,
    finished_cleanly,
    job_evaluations,
    run_job,
    start_executor,
)
from optsearch.engine.store import BASELINE, BASELINES, Sample, Store, StoreError, Trial
from optsearch.strategies import Strategy, make_strategy, state_from_bytes, state_to_bytes
from optsearch.tasks.registry import DEFAULT_TASK
from optsearch.tasks.results import Evaluation, Status
from optsearch.tasks.settings import (
    MAX_SEED,
    PAPER_LRS,
    Settings,
    SettingsError,
    check_int_in,
    check_positive_int,
)

SEARCH_FIDELITY = "halving"
"""A search stops hopeless rules and learning rates early (kept rules get full fidelity's rewards exactly)."""
SEARCH_EXTENDS_LRS = True
"""A search tries the next decade while a rule's best learning rate is at the grid's edge."""
REJECTED_REWARD = 0.0
"""Reward told to the strategy for a rule rejected before training (non-finite, zero, blind to g)."""
DUPLICATE_PENALTY = 0.1
"""Subtracted from a re-sampled rule's stored reward when it is told to the strategy (see `search`)."""
MAY_DIFFER_ON_RESUME = ("device", "data_dir")
"""Settings a resumed search may change: where it trains, not what it computes."""


@dataclass(frozen=True)
class SearchConfig:
    """What makes two searches the same search: a db refuses to resume under a different config.

    `settings` score the rules on a task; an objective search has none and names its `objective` instead.
    One `seed` drives both the strategy and the evaluation.
    """

    settings: Settings | None
    objective: str | None = None
    strategy: str = "ppo"
    seed: int = 0
    groups: int = 2
    decays: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.settings is None) == (self.objective is None):
            raise SettingsError("give a task (its Settings) or an objective (a callable Rule -> float), not both")
        check_int_in("seed", self.seed, 0, MAX_SEED)
        if self.settings is not None and self.settings.seed != self.seed:
            raise SettingsError(f"seed: got {self.seed} for the strategy and {self.settings.seed} in the settings; "
                                "allowed: one seed for both")
        check_positive_int("groups", self.groups)

    def make_strategy(self) -> Strategy:
        return make_strategy(self.strategy, groups=self.groups, seed=self.seed, decays=self.decays,
                             **self.strategy_options)

    def to_json(self) -> dict[str, Any]:
        """Flat, as stores written before `Settings` existed (the committed docs/discovery dbs) hold it."""
        evaluation = (self.settings.to_json() if self.settings is not None
                      else dict.fromkeys(f.name for f in fields(Settings)))
        return {**evaluation, "objective": self.objective, "strategy": self.strategy, "seed": self.seed,
                "groups": self.groups, "decays": self.decays,
                "strategy_options": json.loads(json.dumps(self.strategy_options))}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchConfig:
        """Read `to_json` or the older flat form (no device/data_dir; lrs null for the paper's grid)."""
        settings = None if d.get("task") is None else Settings(
            d["task"], PAPER_LRS if d.get("lrs") is None else tuple(d["lrs"]), d.get("steps"), d.get("batch_size"),
            d["seed"], d.get("device") or "cpu", d.get("data_dir"), d.get("precision", "auto"),
            d.get("fidelity", "full"), d.get("extend_lrs", False), d.get("seeds") and tuple(d["seeds"]))
        return cls(settings, d.get("objective"), d["strategy"], d["seed"], d["groups"], d["decays"],
                   d.get("strategy_options", {}))

    def differences(self, other: SearchConfig) -> list[str]:
        """'key: db has X, this search has Y' for each fact that makes `other` (the db's) another search."""
        mine, theirs = self.to_json(), other.to_json()
        return [f"{k}: db has {theirs[k]!r}, this search has {v!r}" for k, v in mine.items()
                if k not in MAY_DIFFER_ON_RESUME and theirs[k] != v]


@dataclass(frozen=True)
class Schedule:
    """How much a search session does and how it paces asks; not part of the config, so it may change on resume.

    `batch` rules are asked per round (None: 8 × workers) and `ahead` rounds are asked before the oldest round's
    rewards are told. Sampling stops after `max_samples` (None: 20 × budget).
    """

    budget: int
    batch: int | None = None
    ahead: int = 1
    duplicate_penalty: float = DUPLICATE_PENALTY
    max_samples: int | None = None

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


@dataclass
class Progress:
    """What a progress display needs after every stored trial."""

    done: int
    budget: int
    sampled: int
    best_reward: float
    best_rule: str | None
    started: float
    resumed_from: int

    @property
    def unique_ratio(self) -> float:
        return self.done / self.sampled if self.sampled else 1.0

    @property
    def per_minute(self) -> float:
        elapsed = time.time() - self.started
        return 60.0 * (self.done - self.resumed_from) / elapsed if elapsed > 0 else 0.0


@dataclass
class SearchResult:
    trials: list[Trial]  # best first, rejected ones excluded; baselines have strategy BASELINE
    n_samples: int
    n_unique: int
    stopped: str  # budget | sample cap | interrupted
    db: str

    @property
    def best(self) -> Trial | None:
        return self.trials[0] if self.trials else None


class ConfigMismatch(ValueError):
    """The db holds another search."""


class SearchExists(ValueError):
    """A fresh search (resume=False) was pointed at a db that already holds one."""


def search(
    task: str | None = None,
    objective: Callable[[Rule], float] | None = None,
    strategy: str = "ppo",
    budget: int = 100,
    db: str | Path | None = None,
    seed: int | None = None,
    workers: int = 1,
    executor: str | Executor = "inline",
    address: str | None = None,
    steps: int | None = None,
    lrs: Sequence[float] | None = None,
    batch_size: int | None = None,
    groups: int = 2,
    decays: bool = False,
    batch: int | None = None,
    ahead: int = 1,
    baselines: Sequence[str] = BASELINES,
    duplicate_penalty: float = DUPLICATE_PENALTY,
    max_samples: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    data_dir: str | None = None,
    seeds: int = 1,
    fidelity: str | None = None,
    extend_lrs: bool | None = None,
    settings: Settings | None = None,
    resume: bool | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    **strategy_options: Any,
) -> SearchResult:
    """Search for update rules until `budget` unique rules are evaluated.

    Score rules on a child task, given as `settings` or as the keywords task/lrs/steps/batch_size/device/
    precision/data_dir/fidelity/extend_lrs (default: mnist1d; batched evaluation, see `optsearch.evaluate`;
    `seeds` N > 1 scores each rule by its mean reward over seeds seed … seed + N - 1), or with any
    `objective(rule) -> float` (it runs in this process). `db` is the SQLite trial store: `resume=None` resumes
    an existing one (its config must match) or starts one; True requires one; False refuses one that holds a
    search. A db without trials or samples (a start that failed) is taken over. See `Schedule` for batch, ahead
    and max_samples. On a task, the `baselines` (rule texts; Adam and SGD by default) are evaluated once under
    the same settings and stored with strategy BASELINE, outside the budget, so every leaderboard and report
    shows what a found rule has to beat. A rule already evaluated is told to the strategy with its stored reward
    minus `duplicate_penalty`: without it the PPO controller collapsed onto known rules (345 unique in 20,000
    samples on mnist1d); with 0.1 it still collapsed in a long run (916 unique in 40,000 samples; docs/results.md
    §5), and 1.0 got it out. The stored reward itself never changes. Every argument is checked before the db is
    opened: bad input raises a ValueError naming it and leaves no db behind.
    """
    settings = _settings(task, objective, settings, seed, lrs=lrs, steps=steps, batch_size=batch_size,
                         device=device, precision=precision, data_dir=data_dir, fidelity=fidelity,
                         extend_lrs=extend_lrs, seeds=None if seeds == 1 else seeds)
    seed = seed if seed is not None else settings.seed if settings is not None else 0
    name = None if objective is None else getattr(objective, "__qualname__", type(objective).__qualname__)
    config = SearchConfig(settings, name, strategy, seed, groups, decays, dict(strategy_options))
    schedule = Schedule(budget, batch, ahead, duplicate_penalty, max_samples)
    strat = config.make_strategy()
    baseline_rules = [] if objective is not None else list(dict.fromkeys(parse(t) for t in baselines))
    check_executor(executor, workers, settings)
    _check_db_path(db, resume)

    store: Store | None = None
    ex: Executor | None = None
    try:
        store = _open_store(db)
        _claim(store, config, resume)
        ex = start_executor(executor, workers, address, settings)
        loop = SearchLoop(store, strat, _Evaluator(settings, objective, ex), schedule, on_progress)
        stopped = loop.run(config.strategy, baseline_rules)
        trials = [t for t in store.trials(order="reward") if t.status != Status.REJECTED]
        return SearchResult(trials, store.count_samples(), store.count_trials(), stopped, store.path)
    finally:
        if ex is not None and isinstance(executor, str):
            ex.close()
        if store is not None:
            store.close()


class SearchLoop:
    """One session of a search: owns the rounds in flight, the rewards known by fingerprint and the progress.

    The caller owns the store and the executor (and closes them). Round j is asked right after round
    j - ahead - 1 is told, whatever finishes first, so the same seed gives the same search on any executor.
    """

    def __init__(self, store: Store, strategy: Strategy, evaluator: _Evaluator, schedule: Schedule,
                 on_progress: Callable[[Progress], None] | None = None):
        self.store, self.strategy, self.evaluator, self.schedule = store, strategy, evaluator, schedule
        self.on_progress = on_progress or (lambda progress: None)
        self.batch = schedule.batch or 8 * max(1, evaluator.workers)
        self.max_samples = schedule.max_samples or 20 * schedule.budget
        self.known = store.rewards_by_fingerprint()
        self.rounds: deque[_Round] = deque()
        self.step = 0
        checkpoint = store.latest_checkpoint()
        if checkpoint is not None:
            self.step = checkpoint[0] + 1
            strategy.load_state_dict(state_from_bytes(checkpoint[2]))
        self.progress: Progress | None = None
        self.told_new = 0  # new rules of told rounds (and of earlier sessions): fixes the ask schedule

    def run(self, name: str, baselines: Sequence[Rule] = ()) -> str:
        """Evaluate the missing `baselines`, then search as strategy `name`; returns why it stopped."""
        try:
            self._evaluate_baselines(baselines)
            done = self.store.count_trials()
            best = next((t for t in self.store.trials(order="reward") if t.strategy != BASELINE), None)
            self.progress = Progress(done, self.schedule.budget, self.store.count_samples(),
                                     best.reward if best else -math.inf, best and best.rule, time.time(), done)
            self.told_new = done
            return self._search(name)
        except KeyboardInterrupt:
            self._keep_finished(name)
            for rnd in self.rounds:
                for future in rnd.pending:
                    future.cancel()
            return "interrupted"

    def _keep_finished(self, name: str) -> None:
        """Store the chunks that finished cleanly before an interrupt (a finished result is never lost); chunks
        broken by the interrupt itself are not stored as failed, so a resumed search trains them again."""
        if self.progress is None:
            return
        for rnd in self.rounds:
            for future in [f for f in rnd.pending if finished_cleanly(f)]:
                self._record(self.evaluator.trials(future, rnd.pending.pop(future), name), notify=False)

    def _evaluate_baselines(self, rules: Sequence[Rule]) -> None:
        missing = [r for r in rules if r.fingerprint not in self.known]
        pending = self.evaluator.submit(missing, -1)
        while pending:
            for future in self.evaluator.wait(list(pending)):
                for trial in self.evaluator.trials(future, pending.pop(future), BASELINE):
                    self.store.add_trial(trial)
                    self.known[trial.fingerprint] = trial.reward

    def _search(self, name: str) -> str:
        stopped = "budget"
        while True:
            if self._ask_ahead(name):
                stopped = "sample cap"
            if not self.rounds:
                break
            self._tell_oldest(name)
        return "budget" if self.progress.done >= self.schedule.budget else stopped

    def _ask_ahead(self, name: str) -> bool:
        """Keep `ahead` rounds in flight beyond the oldest, so workers never idle while the strategy waits.
        Returns True when the sample cap stopped the asking."""
        budget = self.schedule.budget
        while len(self.rounds) <= self.schedule.ahead:
            in_flight = sum(len(r.new) for r in self.rounds)
            if self.told_new + in_flight >= budget:
                return False
            if self.progress.sampled + sum(len(r.rules) for r in self.rounds) >= self.max_samples:
                return True
            rules = self.strategy.ask(self.batch)
            flying = {r.fingerprint for rnd in self.rounds for r in rnd.new}
            samples, new = self._triage(rules, flying, name)
            new = new[: budget - self.told_new - in_flight]
            self.rounds.append(_Round(self.step, rules, samples, new, self.evaluator.submit(new, self.step)))
            self.step += 1
        return False

    def _tell_oldest(self, name: str) -> None:
        """Store every trial as it finishes (in any round) until the oldest round is complete, then tell it."""
        while self.rounds[0].pending:
            finished = self.evaluator.wait([f for r in self.rounds for f in r.pending])
            for rnd in self.rounds:
                for future in [f for f in rnd.pending if f in finished]:
                    self._record(self.evaluator.trials(future, rnd.pending.pop(future), name))
        rnd = self.rounds.popleft()
        told = [(rule, s) for rule, s in zip(rnd.rules, rnd.samples, strict=True) if s.fingerprint in self.known]
        for _, s in told:
            s.reward = self.known[s.fingerprint]
        penalty = self.schedule.duplicate_penalty
        self.strategy.tell([r for r, _ in told], [s.reward - (penalty if s.kind == "duplicate" else 0.0)
                                                  for _, s in told])
        self.store.add_samples([s for _, s in told])
        self.told_new += len(rnd.new)
        self.progress.sampled += len(told)
        self.store.save_checkpoint(rnd.step, self.progress.sampled, state_to_bytes(self.strategy.state_dict()))
        self.on_progress(self.progress)

    def _record(self, trials: list[Trial], notify: bool = True) -> None:
        for trial in trials:
            self.store.add_trial(trial)
            self.known[trial.fingerprint] = trial.reward
            self.progress.done += 1
            if trial.reward > self.progress.best_reward:
                self.progress.best_reward, self.progress.best_rule = trial.reward, trial.rule
        if notify:
            self.on_progress(self.progress)

    def _triage(self, rules: list[Rule], flying: set[str], name: str) -> tuple[list[Sample], list[Rule]]:
        """Split asked rules into known or in flight (reward comes from the store), rejected (stored now) and
        new (to evaluate once)."""
        samples, new, seen = [], [], set(flying)
        for rule in rules:
            fp = rule.fingerprint
            kind = "duplicate" if fp in self.known or fp in seen else "new"
            if kind == "new":
                reason = rejection(rule)
                if reason is not None:
                    kind = "rejected"
                    ev = self.evaluator.untrained(rule, Status.REJECTED, reason, REJECTED_REWARD)
                    self.store.add_trial(Trial.from_evaluation(ev, rule, name, self.step))
                    self.known[fp] = REJECTED_REWARD
                else:
                    new.append(rule)
            seen.add(fp)
            samples.append(Sample(self.step, str(rule), list(rule.tokens), fp, math.nan, kind))
        return samples, new


@dataclass
class _Round:
    """One ask: its rules and samples, the new ones being evaluated, and their unfinished chunks."""

    step: int
    rules: list[Rule]
    samples: list[Sample]
    new: list[Rule]
    pending: dict[cf.Future, list[Rule]]


class _Evaluator:
    """Sends new rules to the executor in chunks and turns finished chunks into Trials."""

    def __init__(self, settings: Settings | None, objective: Callable[[Rule], float] | None, ex: Executor):
        self.settings, self.objective, self.ex = settings, objective, ex
        self.task = settings.task if settings is not None else "objective"
        self.workers = ex.workers
        self.steps: dict[cf.Future, int] = {}

    def submit(self, rules: list[Rule], step: int) -> dict[cf.Future, list[Rule]]:
        if not rules:
            return {}
        if self.objective is not None:  # a user's callable may not pickle: run it here, now
            future: cf.Future = cf.Future()
            future.set_result([self._objective(rule) for rule in rules])
            chunks = {future: rules}
        else:
            n = min(self.ex.workers, len(rules))
            chunks = {}
            for i in range(n):
                chunk = rules[i::n]
                chunks[self.ex.submit(run_job, EvalJob.of(chunk, self.settings))] = chunk
        self.steps.update(dict.fromkeys(chunks, step))
        return chunks

    @staticmethod
    def wait(futures: list[cf.Future]) -> set[cf.Future]:
        """Block until at least one of `futures` finishes; return the finished ones."""
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED)[0]

    def trials(self, future: cf.Future, chunk: list[Rule], strategy: str) -> list[Trial]:
        """The Trials of a finished chunk; a chunk whose evaluation broke is stored as failed, never dropped."""
        evals = job_evaluations(future, chunk, self.task)
        step = self.steps.pop(future)
        return [Trial.from_evaluation(ev, rule, strategy, step) for rule, ev in zip(chunk, evals, strict=True)]

    def untrained(self, rule: Rule, status: Status, reason: str, reward: float = 0.0) -> Evaluation:
        """The result of a rule that was never trained (rejected) or whose evaluation broke (failed)."""
        return Evaluation(str(rule), self.task, reward, status, reason)

    def _objective(self, rule: Rule) -> Evaluation:
        start = time.perf_counter()
        status, reason = Status.OK, None
        try:
            reward = float(self.objective(rule))
            if not math.isfinite(reward):
                status, reason, reward = Status.DIVERGED, f"objective returned {reward}", 0.0
        except Exception as exc:  # noqa: BLE001 - a user's objective must not crash a long search
            status, reason, reward = Status.FAILED, f"{type(exc).__name__}: {exc}", 0.0
        return Evaluation(str(rule), self.task, reward, status, reason, wall_time=time.perf_counter() - start)


def _settings(task: str | None, objective: Callable[[Rule], float] | None, settings: Settings | None,
              seed: int | None, **keywords: Any) -> Settings | None:
    """The evaluation settings from `settings` or the keywords (None for an objective search), validated."""
    given = sorted(k for k, v in {"task": task, **keywords}.items() if v is not None)
    if objective is not None:
        if settings is not None or given:
            raise SettingsError(f"an objective search takes no task settings; got {', '.join(given) or 'settings'}")
        return None
    if settings is not None:
        if given:
            raise SettingsError(f"give settings or the keywords {', '.join(given)}, not both")
        return settings
    seed = 0 if seed is None else seed
    n_seeds = 1 if keywords["seeds"] is None else keywords["seeds"]
    check_positive_int("seeds", n_seeds)
    extend = SEARCH_EXTENDS_LRS if keywords["extend_lrs"] is None else keywords["extend_lrs"]
    return Settings(task or DEFAULT_TASK, PAPER_LRS if keywords["lrs"] is None else tuple(keywords["lrs"]),
                    keywords["steps"], keywords["batch_size"], seed, keywords["device"] or "cpu",
                    keywords["data_dir"], keywords["precision"] or "auto", keywords["fidelity"] or SEARCH_FIDELITY,
                    bool(extend), None if n_seeds == 1 else tuple(range(seed, seed + n_seeds)))


def _check_db_path(db: str | Path | None, resume: bool | None) -> None:
    """Refuse a db path that cannot hold a search (or, with resume=True, holds none), before opening it."""
    if db is not None and Path(db).is_dir():
        raise StoreError(f"db: {db} is a directory; allowed: a SQLite file (new, or an earlier search's)")
    if resume and db is None:
        raise StoreError("resume: no db given; allowed: resume with the db of an earlier search")
    if resume and not Path(db).is_file():
        raise StoreError(f"db: no search at {db} to resume; allowed: the db of an earlier search")


def _open_store(db: str | Path | None) -> Store:
    return Store(db if db is not None else ":memory:")


def _claim(store: Store, config: SearchConfig, resume: bool | None) -> None:
    """Write `config` into a new db, or check it against the db's; a db holding no work is taken over."""
    stored = store.get_meta("config")
    started = store.count_samples() or store.count_trials(evaluated_only=False)
    if stored is None or not started:
        store.set_meta("config", config.to_json())
        return
    if resume is False and store.count_samples():
        raise SearchExists(f"{store.path} already holds a search; resume it or choose another db")
    diff = config.differences(SearchConfig.from_json(stored))
    if diff:
        raise ConfigMismatch(f"{store.path} was written by a different search and cannot be resumed with this "
                             "config (" + "; ".join(diff) + "); use another db or the same settings")
