"""RuleOptimizer: any rule of the DSL as a `torch.optim.Optimizer`."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from optsearch.dsl import Rule
from optsearch.optim import checks
from optsearch.optim.bookkeeping import CheckedOptimizer, Slot, params_with_grad
from optsearch.optim.functional import foreach_chunks, init_state, rule_update
from optsearch.optim.zoo import resolve


class RuleOptimizer(CheckedOptimizer):
    r"""Runs an update rule Δ of the DSL (paper.md), with optional decoupled weight decay λ (AdamW's):

    .. math::
        \begin{aligned}
            &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
             y_t = \beta_3 y_{t-1} + (1-\beta_3) g_t^3 \qquad (\beta = 0.9, 0.999, 0.999)\\
            &\hat m_t = m_t / (1 - \beta_1^t),\ \hat v_t,\ \hat y_t \text{ likewise} \\
            &\theta'_{t-1} = \theta_{t-1} - \gamma \lambda\, \theta_{t-1} \\
            &\theta_t = \theta'_{t-1} - \gamma\, \Delta(g_t, \hat m_t, \hat v_t, \hat y_t, \theta'_{t-1}, t)
        \end{aligned}

    Only the running averages the rule reads are kept (`rule.state`). Decay operands read step t − 1 of
    a schedule over `total_steps`. Noise and dropout come from a seeded `torch.Generator` per device whose
    state is part of `state_dict()`, so a resumed run repeats the uninterrupted one bit for bit. With rule
    ``"adam"`` and λ > 0 this is torch's AdamW (eps 1e-8); λ = 0 (the default) is plain Δ.

    Args:
        params: iterable of parameters or param groups.
        rule: a `Rule`, infix text such as ``"g * exp(sign(g) * sign(m))"`` or a zoo name (``"powersign"``).
        lr: learning rate γ (default 1e-3).
        total_steps: T for the decay operands `ld`, `cd`, `rd` (required by rules that use them).
        seed: seed of the noise generator, an int in [0, 2**64); None draws one from torch's global RNG (so
            `torch.manual_seed` makes runs reproducible). Unused by deterministic rules.
        foreach: compute all tensors of a group at once with `torch._foreach_*` kernels (True), one at a time
            (False), or by default all at once off the CPU and in cache-sized chunks on CPUs (fastest there).
            All give identical results.
        weight_decay: λ, decoupled weight decay (default 0); the rule sees the decayed weights.
    """

    group_checks = {**CheckedOptimizer.group_checks, "total_steps": checks.optional(checks.positive_int)}

    def __init__(self, params: ParamsT, rule: Rule | str, lr: float = 1e-3, total_steps: int | None = None,
                 seed: int | None = None, foreach: bool | None = None, weight_decay: float = 0.0) -> None:
        self.rule = resolve(rule)
        checks.optional(checks.seed)("seed", seed)
        super().__init__(params, dict(lr=lr, total_steps=total_steps, foreach=foreach, weight_decay=weight_decay))
        if seed is None and self.rule.stochastic:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if self.rule.needs_total_steps and group["total_steps"] is None:
            raise ValueError(f"rule {self.rule} uses a decay operand (ld, cd, rd): pass total_steps=T, the number "
                             f"of training steps")

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if not self.rule.stochastic:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def _step_group(self, group: dict[str, Any], plan: None) -> None:
        by_device: dict[torch.device, list[Slot]] = {}
        for slot in params_with_grad(self, group, partial(init_state, self.rule)):
            by_device.setdefault(slot.param.device, []).append(slot)
        for device, slots in by_device.items():
            params = [s.param for s in slots]
            for part in foreach_chunks(params, group["foreach"]):
                rule_update(self.rule, params[part], [s.grad for s in slots[part]],
                            [s.state for s in slots[part]], [s.step for s in slots[part]], lr=group["lr"],
                            weight_decay=group["weight_decay"], total_steps=group["total_steps"],
                            generator=self._generator(device))

    def __getstate__(self) -> dict[str, Any]:  # torch keeps only defaults, state and groups; copies need the rest
        return {**super().__getstate__(), "rule": self.rule, "seed": self.seed, "_generators": self._generators}

    def saved_by(self) -> str:
        return f"RuleOptimizer({self.rule})"

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict plus who saved it (the rule) and the noise generators' states."""
        return {**super().state_dict(),
                "generators": {device: g.get_state() for device, g in self._generators.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuses, here rather than at the next step, a state dict of another rule or optimizer."""
        state_dict = dict(state_dict)
        generators = state_dict.pop("generators", {})
        super().load_state_dict(state_dict)
        for device, rng_state in generators.items():
            self._generator(torch.device(device)).set_state(rng_state.cpu())
