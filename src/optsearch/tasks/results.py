"""The one result type of an evaluation, from the trainer to the trial store: Evaluation with per-lr results.

Everything here is plain data (`to_dict()` is JSON), so it crosses process and machine boundaries as is.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How an evaluation ended. ok: some learning rate trained; diverged: every one went non-finite; invalid: the
    rule could not run; rejected: a search skipped it untrained (zero, non-finite, blind to g); failed: the
    evaluation itself broke (a worker died, an objective raised)."""

    OK = "ok"
    DIVERGED = "diverged"
    INVALID = "invalid"
    REJECTED = "rejected"
    FAILED = "failed"


BROKEN: tuple[Status, ...] = (Status.INVALID, Status.FAILED)
"""An evaluation with one of these statuses trained nothing at all (a diverged one did train)."""


def baselines_broken(results: Sequence[Any]) -> str | None:
    """Why a task cannot rank rules, when every one of its baselines' `results` (Evaluations or stored trials) is
    invalid or failed: the task, or its workers, cannot train. None when one trained or there are none."""
    if not results or any(r.status not in BROKEN for r in results):
        return None
    first = results[0]
    reason = (first.reason or "no reason given").splitlines()[0]
    return f"every baseline came back invalid or failed ({first.rule}: {first.status}: {reason})"


@dataclass
class LrResult:
    """One (rule, learning-rate) member's run, as the trainers fill it.

    Scores are on the reward scale, higher is better (accuracy; 1/perplexity; 1/(1+mse): see `tasks.metrics`),
    under the names `val_acc` / `test_acc` that stored searches already use. A diverged member (loss or weights
    non-finite at step `diverged_at`) scores 0 from then on and has no loss. A member stopped early by successive
    halving (`stopped_at`: the last step it trained) keeps the scores it had then and has no loss; its curve
    ends there.
    """

    lr: float
    val_acc: float = 0.0
    test_acc: float = 0.0
    loss: float | None = None  # mean training loss over the last 10% of the steps
    diverged_at: int | None = None
    curve: list[float] = field(default_factory=list)  # validation score at `curve_steps(steps)`
    stopped_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LrResult:
        """Read `asdict` output, or a per_lr dict of an older store (`diverged`: bool, no curve)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class CurvePoint:
    step: int
    val_acc: float  # the validation score on the reward scale, as in LrResult


@dataclass
class Evaluation:
    """A rule's reward on a task and how it was reached.

    reward: the best final validation score over the learning-rate grid, higher is better, in [0, 1]: accuracy,
    or 1/perplexity = exp(-mean cross-entropy) for language tasks, 1/(1+mse) for regression (0 when diverged or
    invalid). status: see `Status`; `reason` says why when it is not ok. `curve` is the validation score of the
    best learning rate at a few steps.
    `wall_time` is this rule's share of the training time in seconds.
    `stopped_at`: the step at which successive halving stopped the whole rule (None: some lr trained to the end);
    its reward is then its best score at that step.
    Several `seeds`: one learning rate is chosen by the mean validation score over the seeds, `seed_rewards` are
    each seed's score at that lr and `reward` their mean; `per_lr` holds the means over seeds. (Each seed's own
    best lr would be optimistic: it picks the lr on the same noise it reports.)
    """

    rule: str
    task: str
    reward: float
    status: Status
    reason: str | None = None
    per_lr: list[LrResult] = field(default_factory=list)
    best_lr: float | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    steps: int = 0
    batch_size: int = 0
    seed: int = 0
    wall_time: float = 0.0
    stopped_at: int | None = None
    seeds: list[int] = field(default_factory=list)
    seed_rewards: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def std(self) -> float | None:
        """The sample standard deviation of the per-seed rewards (None with fewer than two seeds)."""
        return statistics.stdev(self.seed_rewards) if len(self.seed_rewards) > 1 else None

    @property
    def sem(self) -> float | None:
        """The standard error of the mean reward over seeds (None with fewer than two seeds)."""
        return None if self.std is None else self.std / math.sqrt(len(self.seed_rewards))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        d = dict(d)
        d["per_lr"] = [LrResult.from_dict(p) for p in d.get("per_lr", [])]
        d["curve"] = [CurvePoint(**c) for c in d.get("curve", [])]
        return cls(**d)
