"""One session of a search: ask → fingerprint/dedup/reject → evaluate on an executor → store → tell → checkpoint.

Every finished trial is written as it arrives; the strategy is checkpointed after each tell. A search
resumed from its db re-asks from the last checkpoint, finds the finished rules by fingerprint in the
store and never trains them again, and stops at the budget of unique evaluations.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from optsearch.dsl import Rule, rejection
from optsearch.engine.config import Schedule
from optsearch.engine.executors import EvalJob, Executor, finished_cleanly, job_evaluations, run_job
from optsearch.engine.store import BASELINE, Sample, Store, Trial
from optsearch.strategies import Strategy, state_from_bytes, state_to_bytes
from optsearch.tasks.results import Evaluation, Status, baselines_broken
from optsearch.tasks.settings import Settings

REJECTED_REWARD = 0.0
"""Reward told to the strategy for a rule rejected before training (non-finite, zero, blind to g)."""


class BrokenTask(ValueError):
    """The task cannot train even the baselines: a search on it would spend its budget on nothing."""


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


class SearchLoop:
    """One session of a search: owns the rounds in flight, the rewards known by fingerprint and the progress.

    The caller owns the store and the executor (and closes them). Round j is asked right after round
    j - ahead - 1 is told, whatever finishes first, so the same seed gives the same search on any executor.
    """

    def __init__(self, store: Store, strategy: Strategy, evaluator: RuleEvaluator, schedule: Schedule,
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
        """Evaluate and store the baselines not stored yet; when every one of them comes back invalid or failed,
        the task is what is broken: raise BrokenTask and store none (a fixed task then starts afresh)."""
        missing = [r for r in rules if r.fingerprint not in self.known]
        pending = self.evaluator.submit(missing, -1)
        trials: list[Trial] = []
        while pending:
            for future in self.evaluator.wait(list(pending)):
                trials += self.evaluator.trials(future, pending.pop(future), BASELINE)
        why = baselines_broken(trials) if len(trials) == len(rules) else None  # stored ones passed this once
        if why is not None:
            raise BrokenTask(f"task {self.evaluator.task}: {why}, so the task (or its workers) is broken, not the "
                             "rules")
        for trial in trials:
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
            room = self.max_samples - self.progress.sampled - sum(len(r.rules) for r in self.rounds)
            if room <= 0:
                return True
            rules = self.strategy.ask(min(self.batch, room))  # the cap is hard: never more samples than it
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


class RuleEvaluator:
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
