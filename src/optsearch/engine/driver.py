"""The search driver: `search()` checks everything it is given, claims the db, starts the executor and runs the loop.

Everything a search is given is checked before its db is opened, so bad input never leaves a db behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optsearch.dsl import Rule, parse
from optsearch.engine.config import (
    DUPLICATE_PENALTY,
    SEARCH_EXTENDS_LRS,
    SEARCH_FIDELITY,
    SEARCH_TASK,
    Schedule,
    SearchConfig,
    stored_config,
)
from optsearch.engine.executors import Executor, check_executor, start_executor
from optsearch.engine.funnel_plan import settings_key
from optsearch.engine.loop import Progress, RuleEvaluator, SearchLoop
from optsearch.engine.store import BASELINES, Store, StoreError, Trial
from optsearch.tasks.results import Status
from optsearch.tasks.settings import PAPER_LRS, Settings, SettingsError, check_positive_int
from optsearch.tasks.suite import SUITE_BASELINES, Reference, Suite, cached_reference, suite_aggregate, suite_tasks


@dataclass
class SearchResult:
    trials: list[Trial]  # best first, rejected ones excluded; baselines have strategy BASELINE
    n_samples: int
    n_unique: int
    stopped: str  # budget | sample cap | interrupted
    db: str
    n_duplicates: int = 0  # samples of rules already known when asked
    max_samples: int | None = None  # the sample cap this session ran under

    @property
    def best(self) -> Trial | None:
        return self.trials[0] if self.trials else None


class ConfigMismatch(ValueError):
    """The db holds another search."""


class SearchExists(ValueError):
    """A fresh search (resume=False) was pointed at a db that already holds one."""


def search(
    task: str | Sequence[str] | None = None,
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
    penalty_mode: str = "constant",
    device: str | None = None,
    precision: str | None = None,
    data_dir: str | None = None,
    seeds: int = 1,
    fidelity: str | None = None,
    extend_lrs: bool | None = None,
    settings: Settings | Suite | None = None,
    aggregate: str | None = None,
    resume: bool | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    **strategy_options: Any,
) -> SearchResult:
    """Search for update rules until `budget` unique rules are evaluated.

    Score rules on a child task or suite, given as `settings` or as the keywords task/lrs/steps/batch_size/device/
    precision/data_dir/fidelity/extend_lrs (default task: the `transfer` suite, `config.SEARCH_TASK`; batched
    evaluation, see `optsearch.evaluate`; `seeds` N > 1 scores each rule by its mean reward over seeds
    seed … seed + N - 1), or with any `objective(rule) -> float` (it runs in this process). `db` is the SQLite trial
    store: `resume=None` resumes an existing one (its config must match) or starts one; True requires one; False refuses
    one that holds a search. A db without trials or samples (a start that failed) is taken over. See `Schedule` for
    batch, ahead and max_samples. On a task, the `baselines` (rule texts; Adam and SGD by default) are evaluated once
    under the same settings and stored with strategy BASELINE, outside the budget, so every leaderboard and report shows
    what a found rule has to beat; when every baseline comes back invalid or failed, the task itself is broken and the
    search raises BrokenTask before sampling anything. A rule already evaluated is told to the strategy with its stored
    reward minus `duplicate_penalty`: without it the PPO controller collapsed onto known rules (345 unique in 20,000
    samples on mnist1d); with 0.1 it still collapsed in a long run (916 unique in 40,000 samples; docs/results.md §5),
    and 1.0 got it out; `penalty_mode` "count" multiplies it by how often the rule was sampled before
    (`config.PENALTY_MODES`). The stored reward itself never changes. Every argument is checked before the db is opened:
    bad input raises a ValueError naming it and leaves no db behind.

    On a suite (`task` a list of tasks, "a,b,c" or a suite's name such as "transfer"; or `settings` a `Suite`),
    a rule's reward is the `aggregate` (mean or min) of its tasks' scores normalized to their tuned baselines
    (`tasks.suite`). Those baselines are trained once per task and settings, in this process, and kept in the
    db, so a resumed search never retrains them; each trial keeps its per-task scores.
    """
    if task is None and settings is None and objective is None:
        task = SEARCH_TASK
    suite, aggregate = _suite(task, settings, aggregate)
    if isinstance(settings, Suite):
        settings = settings.settings[0]
    elif suite is not None:
        task = suite[0]
    settings = _settings(task, objective, settings, seed, lrs=lrs, steps=steps, batch_size=batch_size,
                         device=device, precision=precision, data_dir=data_dir, fidelity=fidelity,
                         extend_lrs=extend_lrs, seeds=None if seeds == 1 else seeds)
    seed = seed if seed is not None else settings.seed if settings is not None else 0
    name = None if objective is None else getattr(objective, "__qualname__", type(objective).__qualname__)
    config = SearchConfig(settings, name, strategy, seed, groups, decays, dict(strategy_options), suite, aggregate)
    schedule = Schedule(budget, batch, ahead, duplicate_penalty, max_samples, penalty_mode)
    strat = config.make_strategy()
    baseline_rules = [] if objective is not None else list(dict.fromkeys(parse(t) for t in baselines))
    check_executor(executor, workers, settings, address)
    _check_db_path(db, resume)

    store: Store | None = None
    ex: Executor | None = None
    try:
        store = _open_store(db)
        _claim(store, config, resume)
        references = _references(store, config.evaluation) if suite is not None else ()
        ex = start_executor(executor, workers, address, settings)
        loop = SearchLoop(store, strat, RuleEvaluator(config.evaluation, objective, ex, references), schedule,
                          on_progress)
        stopped = loop.run(config.strategy, baseline_rules)
        trials = [t for t in store.trials(order="reward") if t.status != Status.REJECTED]
        return SearchResult(trials, store.count_samples(), store.count_trials(), stopped, store.path,
                            store.count_samples("duplicate"), loop.max_samples)
    finally:
        if ex is not None and isinstance(executor, str):
            ex.close()
        if store is not None:
            store.close()


def _suite(task: Any, settings: Settings | Suite | None, aggregate: str | None
           ) -> tuple[tuple[str, ...] | None, str]:
    """The tasks of a suite search (None: one task) and its aggregate, from `task` or a `Suite` as `settings`."""
    if isinstance(settings, Suite):
        if aggregate is not None or settings != Suite.of(settings.tasks, settings.settings[0], settings.aggregate):
            raise SettingsError("settings: a search's Suite shares one grid, budget and seed over its tasks "
                                "(build it with Suite.of) and carries its own aggregate")
        return settings.tasks, settings.aggregate
    tasks = suite_tasks(task)
    return tasks, suite_aggregate(tasks, aggregate)


def _references(store: Store, suite: Suite) -> list[Reference]:
    """Each task's tuned baselines: read from the db, or trained now (once per task and settings, and once per
    process: they are deterministic, so searches run one after another in a process share them) and kept."""
    out = []
    for settings in suite.settings:
        key = f"{settings_key(settings)}-seed{settings.seed}"
        reference = store.reference(settings.task, key, SUITE_BASELINES)
        if reference is None:
            reference = cached_reference(settings)
            store.add_reference(key, reference)
        out.append(reference)
    return out


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
    check_positive_int("seeds", n_seeds)  # a search takes a count; Settings turns it into seeds seed … seed + n − 1
    extend = SEARCH_EXTENDS_LRS if keywords["extend_lrs"] is None else keywords["extend_lrs"]
    return Settings(task, PAPER_LRS if keywords["lrs"] is None else tuple(keywords["lrs"]),
                    keywords["steps"], keywords["batch_size"], seed, keywords["device"] or "cpu",
                    keywords["data_dir"], keywords["precision"] or "auto", keywords["fidelity"] or SEARCH_FIDELITY,
                    bool(extend), n_seeds)


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
    stored = stored_config(store)
    started = store.count_samples() or store.count_trials(evaluated_only=False)
    if stored is None or not started:
        store.set_meta("config", config.to_json())
        return
    if resume is False and store.count_samples():
        raise SearchExists(f"{store.path} already holds a search; resume it or choose another db")
    diff = config.differences(stored)
    if diff:
        raise ConfigMismatch(f"{store.path} was written by a different search and cannot be resumed with this "
                             "config (" + "; ".join(diff) + "); use another db or the same settings")
