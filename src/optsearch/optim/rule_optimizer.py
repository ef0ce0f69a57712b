"""RuleOptimizer: any rule of the DSL as a `torch.optim.Optimizer`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch.optim.optimizer import Optimizer, ParamsT

from optsearch.dsl import Rule, parse
from optsearch.optim.bookkeeping import params_with_grad
from optsearch.optim.functional import compute_updates, foreach_chunks, init_state


class RuleOptimizer(Optimizer):
    r"""Runs an update rule Δ of the DSL (paper.md):

    .. math::
        \begin{aligned}
            &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
             y_t = \beta_3 y_{t-1} + (1-\beta_3) g_t^3 \qquad (\beta = 0.9, 0.999, 0.999)\\
            &\hat m_t = m_t / (1 - \beta_1^t),\ \hat v_t,\ \hat y_t \text{ likewise} \\
            &\theta_t = \theta_{t-1} - \gamma\, \Delta(g_t, \hat m_t, \hat v_t, \hat y_t, \theta_{t-1}, t)
        \end{aligned}

    Only the running averages the rule reads are kept (`rule.state`). Decay operands read step t − 1 of
    a schedule over `total_steps`. Noise and dropout come from a seeded `torch.Generator` per device whose
    state is part of `state_dict()`, so a resumed run repeats the uninterrupted one bit for bit.

    Args:
        params: iterable of parameters or param groups.
        rule: a `Rule` or infix text such as ``"g * exp(sign(g) * sign(m))"``.
        lr: learning rate γ (default 1e-3).
        total_steps: T for the decay operands `ld`, `cd`, `rd` (required by rules that use them).
        seed: seed of the noise generator; None draws one from torch's global RNG (so `torch.manual_seed`
            makes runs reproducible). Unused by deterministic rules.
        foreach: compute all tensors of a group at once with `torch._foreach_*` kernels (True), one at a time
            (False), or by default all at once off the CPU and in cache-sized chunks on CPUs (fastest there).
            All give identical results.
    """

    def __init__(self, params: ParamsT, rule: Rule | str, lr: float = 1e-3, total_steps: int | None = None,
                 seed: int | None = None, foreach: bool | None = None) -> None:
        rule = parse(rule)
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr >= 0.0:
            raise ValueError(f"Invalid learning rate lr={lr!r}: must be a number >= 0")
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                        or total_steps <= 0):
            raise ValueError(f"Invalid total_steps={total_steps!r}: must be None or a positive int")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Invalid seed={seed!r}: must be None or an int")
        super().__init__(params, dict(lr=lr, total_steps=total_steps, foreach=foreach))
        if rule.needs_total_steps and any(g["total_steps"] is None for g in self.param_groups):
            raise ValueError(f"rule {rule} uses a decay operand (ld, cd, rd): pass total_steps=T, the number of "
                             f"training steps")
        self.rule = rule
        if seed is None and rule.stochastic:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if not self.rule.stochastic:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_device: dict[torch.device, tuple[list, list, list, list]] = {}
            for p, state in params_with_grad(self, group, partial(init_state, self.rule)):
                params, grads, states, steps = by_device.setdefault(p.device, ([], [], [], []))
                params.append(p)
                grads.append(p.grad)
                states.append(state)
                steps.append(state["step"])
            for device, (params, grads, states, steps) in by_device.items():
                for part in foreach_chunks(params, group["foreach"]):
                    deltas = compute_updates(self.rule, grads[part], params[part], states[part], steps[part],
                                             group["total_steps"], self._generator(device))
                    torch._foreach_add_(params[part], deltas, alpha=-group["lr"])
        return loss

    def __getstate__(self) -> dict[str, Any]:  # torch keeps only defaults, state and groups; copies need the rest
        return {**super().__getstate__(), "rule": self.rule, "seed": self.seed, "_generators": self._generators}

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict plus the rule's text and the noise generators' states."""
        state_dict = super().state_dict()
        state_dict["rule"] = str(self.rule)
        state_dict["generators"] = {device: g.get_state() for device, g in self._generators.items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved_rule = state_dict.pop("rule", None)
        if saved_rule is not None and parse(saved_rule) != self.rule:
            raise ValueError(f"this state dict was saved by a RuleOptimizer running {saved_rule}, "
                             f"not {self.rule}")
        generators = state_dict.pop("generators", {})
        super().load_state_dict(state_dict)
        for device, rng_state in generators.items():
            self._generator(torch.device(device)).set_state(rng_state.cpu())
