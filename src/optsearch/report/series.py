"""Numbers a search report plots, derived from the store's rows (pure functions, so they are easy to test)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optsearch.engine.store import Sample, Trial

SAMPLE_KINDS = ("new", "duplicate", "rejected")


@dataclass
class LearningCurve:
    """The paper's Figure 4: reward of every sampled rule in sampling order, its running mean and best so far."""

    reward: np.ndarray
    kind: list[str]
    running_mean: np.ndarray
    best: np.ndarray
    window: int

    @property
    def n(self) -> np.ndarray:
        return np.arange(1, len(self.reward) + 1)


def learning_curve(samples: Sequence[Sample], window: int | None = None) -> LearningCurve:
    """Running mean over the last `window` samples (default: a tenth of them, 1 to 100) shows the trend."""
    reward = np.array([s.reward for s in samples], dtype=float)
    reward = np.where(np.isfinite(reward), reward, 0.0)  # a diverged child counts as reward 0
    window = window or max(1, min(100, len(reward) // 10))
    cumsum = np.concatenate([[0.0], np.cumsum(reward)])
    ends = np.arange(1, len(reward) + 1)
    starts = np.maximum(0, ends - window)
    running_mean = (cumsum[ends] - cumsum[starts]) / (ends - starts)
    best = np.maximum.accumulate(reward) if len(reward) else reward
    return LearningCurve(reward, [s.kind for s in samples], running_mean, best, window)


def kind_counts(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Cumulative count of each sample kind after every sample: how fast the strategy stops finding new rules."""
    kinds = np.array([s.kind for s in samples])
    return {k: np.cumsum(kinds == k) for k in SAMPLE_KINDS}


def evaluated(trials: Sequence[Trial]) -> list[Trial]:
    """Trials that trained a child (rejected rules never did)."""
    return [t for t in trials if t.status != "rejected"]


def pareto_front(trials: Sequence[Trial]) -> list[Trial]:
    """Rules no other rule beats on both counts (simpler or as simple, and better), simplest first."""
    front: list[Trial] = []
    for t in sorted(trials, key=lambda t: (t.complexity, -t.reward)):
        if not front or t.reward > front[-1].reward:
            front.append(t)
    return front


def curve_points(trial: Trial) -> tuple[list[float], list[float]]:
    """A trial's validation curve (at its best learning rate) as x = training step, y = validation accuracy."""
    return [p["step"] for p in trial.curve], [p["val_acc"] for p in trial.curve]

