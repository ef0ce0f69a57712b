"""The learning-rate schedule the paper found alongside PowerSign and AddSign: linear cosine decay."""

from __future__ import annotations

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from optsearch.optim import checks
from optsearch.optim.decay import CosineDecay, LinearDecay

VARIANCE_DECAY = 0.55
"""The noisy variant's noise has variance 1 / (1 + t)^0.55."""


class LinearCosineDecay(LRScheduler):
    r"""Linear cosine decay (TensorFlow's ``linear_cosine_decay``), a factor on each group's initial lr:

    .. math::
        \gamma_t = \gamma_0 \left( (\alpha + \ell_t) \cdot \tfrac12 \left(1 + \cos(2\pi n \bar t / T)\right)
            + \beta \right), \qquad \ell_t = (T - \bar t) / T, \quad \bar t = \min(t, T)

    With ``noisy=True``, :math:`\ell_t` gets Gaussian noise of variance :math:`1 / (1 + \bar t)^{0.55}`
    (``noisy_linear_cosine_decay``). The noise at step t is a function of (seed, t) only, so the schedule
    has a closed form and a resumed run sees the same learning rates.

    Args:
        optimizer: the wrapped optimizer.
        total_steps: T, the number of scheduler steps over which to decay.
        periods: n, the number of cosine periods (default 0.5: one half cosine from 1 to 0).
        alpha: α, added to the linear term (default 0).
        beta: β, the floor of the factor (default 0.001).
        noisy: add the annealed noise to the linear term.
        seed: seed of that noise; None draws one from torch's global RNG.
        last_epoch: index of the last step, for resuming (default -1: start).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, periods: float = 0.5, alpha: float = 0.0,
                 beta: float = 0.001, noisy: bool = False, seed: int | None = None, last_epoch: int = -1) -> None:
        checks.positive_int("total_steps", total_steps)
        checks.positive("periods", periods)
        checks.finite("alpha", alpha)
        checks.finite("beta", beta)
        checks.optional(checks.seed)("seed", seed)
        self.total_steps, self.periods, self.alpha, self.beta, self.noisy = total_steps, periods, alpha, beta, noisy
        if noisy and seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.seed = seed
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of the initial learning rate at scheduler step `step` (0-based)."""
        linear = LinearDecay(self.total_steps)(step)
        if self.noisy:  # a generator seeded from (seed, step): the noise is a pure function of the step
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % 2**63)
            noise = torch.randn((), generator=generator, dtype=torch.float64).item()
            linear += noise * (1 + min(step, self.total_steps)) ** (-VARIANCE_DECAY / 2)
        return (self.alpha + linear) * CosineDecay(self.total_steps, self.periods)(step) + self.beta

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]
