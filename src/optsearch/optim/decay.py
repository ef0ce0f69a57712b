"""Decay schedules: step -> factor in [0, 1], as the paper's decay operands and PowerSign/AddSign's sign decay.

Each schedule is a small frozen dataclass rather than a closure, so it pickles (process pools, checkpoints),
compares equal by value and prints readably. Steps past `total_steps` read the value at `total_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from optsearch.dsl import vocab
from optsearch.optim import checks


def _check_periods(periods: float, zero_after: float | None) -> None:
    checks.positive("periods", periods)
    checks.optional(checks.non_negative)("zero_after", zero_after)


def _clipped(step: float, total_steps: int) -> float:
    checks.non_negative("step", step)
    return min(step, total_steps)


@dataclass(frozen=True)
class LinearDecay:
    r""":math:`(T - \min(s, T)) / T`: from 1 at step 0 down to 0 at step T."""

    total_steps: int

    def __post_init__(self) -> None:
        checks.positive_int("total_steps", self.total_steps)

    def __call__(self, step: float) -> float:
        return (self.total_steps - _clipped(step, self.total_steps)) / self.total_steps


@dataclass(frozen=True)
class CosineDecay:
    r""":math:`\tfrac12 (1 + \cos(\pi \cdot 2n \min(s, T) / T))`; 0 once :math:`2n \min(s,T)/T \ge 2\,`zero_after."""

    total_steps: int
    periods: float = 0.5
    zero_after: float | None = None

    def __post_init__(self) -> None:
        checks.positive_int("total_steps", self.total_steps)
        _check_periods(self.periods, self.zero_after)

    def __call__(self, step: float) -> float:
        fraction = 2.0 * self.periods * _clipped(step, self.total_steps) / self.total_steps
        if self.zero_after is not None and fraction >= 2.0 * self.zero_after:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * fraction))


@dataclass(frozen=True)
class RestartDecay:
    r""":math:`\tfrac12 (1 + \cos(\pi ((n \min(s, T)) \bmod T) / T))`: a half cosine that restarts n times;
    0 once :math:`n \min(s,T)/T \ge` zero_after."""

    total_steps: int
    periods: float = 1.0
    zero_after: float | None = None

    def __post_init__(self) -> None:
        checks.positive_int("total_steps", self.total_steps)
        _check_periods(self.periods, self.zero_after)

    def __call__(self, step: float) -> float:
        scaled = self.periods * _clipped(step, self.total_steps)
        if self.zero_after is not None and scaled / self.total_steps >= self.zero_after:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * (scaled % self.total_steps) / self.total_steps))


Decay = LinearDecay | CosineDecay | RestartDecay


def linear_decay(total_steps: int) -> LinearDecay:
    """Linear decay from 1 to 0 over `total_steps` (the paper's `ld`)."""
    return LinearDecay(total_steps)


def cosine_decay(total_steps: int, periods: float = 0.5, zero_after: float | None = None) -> CosineDecay:
    """Cyclical cosine decay with `periods` full cycles over `total_steps` (the paper's `cd(n)`; 0.5 = plain `cd`,
    a half cosine from 1 to 0)."""
    return CosineDecay(total_steps, periods, zero_after)


def restart_decay(total_steps: int, periods: float = 1, zero_after: float | None = None) -> RestartDecay:
    """Cosine decay from 1 to 0 restarted `periods` times over `total_steps` (the paper's `rd(n)`)."""
    return RestartDecay(total_steps, periods, zero_after)


SCHEDULES: dict[str, Callable[[int], Decay]] = {
    "ld": LinearDecay,
    **{vocab.cd_token(n): lambda t, n=n: CosineDecay(t, n) for n in vocab.DECAY_PERIODS},
    **{vocab.rd_token(n): lambda t, n=n: RestartDecay(t, n) for n in vocab.DECAY_PERIODS},
}
"""The DSL's decay operands: token -> its schedule given total_steps (the t-th update reads it at step t − 1)."""
