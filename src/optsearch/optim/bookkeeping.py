"""What every optimizer here does around its math (torch's split: object = bookkeeping, function = math):
check hyperparameters per param group, refuse whatever a step cannot do before touching anything, create state
lazily and count steps, hand complex tensors to the math as their real views (as torch does), and tag
`state_dict()` with who saved it so a foreign one fails at load time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from optsearch.optim import checks
from optsearch.optim.checks import Check

SAVED_BY = "saved_by"
"""state_dict() key naming the optimizer (and rule) that saved it."""


class CheckedOptimizer(Optimizer):
    """A torch Optimizer whose hyperparameters (`group_checks`, per param group, also through
    `add_param_group` and again at each step) are validated, and whose `step` runs `_step_group` on each group
    once everything the step could refuse has been checked (`_plan_group`), so a refused step changes nothing."""

    group_checks: ClassVar[dict[str, Check]] = {
        "lr": checks.non_negative, "weight_decay": checks.non_negative, "foreach": checks.flag,
    }

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        checks.check_all(self.group_checks, group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if isinstance(param_group, dict):  # torch explains anything else
            self._check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def _plan_group(self, group: dict[str, Any]) -> Any:
        """What `_step_group` needs that could be refused, computed without changing any tensor or state."""
        return None

    def _step_group(self, group: dict[str, Any], plan: Any) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = [self._plan(i, group) for i, group in enumerate(self.param_groups)]
        for group, plan in zip(self.param_groups, plans, strict=True):
            self._step_group(group, plan)
        return loss

    def _plan(self, i: int, group: dict[str, Any]) -> Any:
        """Refuse, before any group is stepped, hyperparameters changed since construction (by hand or a
        scheduler), sparse gradients and whatever the subclass's plan refuses."""
        try:
            self._check_group(group)
        except ValueError as err:
            raise ValueError(f"param group {i}: {err}") from None
        for p in group["params"]:
            if p.grad is not None and p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients (param group {i} "
                                   f"has one, for a parameter of shape {tuple(p.shape)}): use dense gradients")
        return self._plan_group(group)

    def saved_by(self) -> str:
        """What a state dict must come from to be loaded here (the class; RuleOptimizer adds its rule)."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), SAVED_BY: self.saved_by()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved_by = state_dict.pop(SAVED_BY, None)
        if saved_by != self.saved_by():
            source = saved_by or "an optimizer that does not say which (e.g. one of torch's)"
            raise ValueError(f"cannot load a state dict saved by {source} into {self.saved_by()}: "
                             f"its state and hyperparameters mean something else")
        super().load_state_dict(state_dict)


def next_step(optimizer: Optimizer, p: Tensor) -> int:
    """The 1-based number of `p`'s coming update, read without creating its state."""
    return optimizer.state.get(p, {}).get("step", 0) + 1


def real(value: Any) -> Any:
    """A complex tensor as its real view (torch.view_as_real: real and imaginary parts as a last dimension of 2),
    as torch's optimizers treat complex parameters; anything else as it is."""
    return torch.view_as_real(value) if isinstance(value, Tensor) and value.is_complex() else value


@dataclass
class Slot:
    """One parameter's share of a step: the parameter, its gradient and its state (buffers by name, "step") as real
    tensors (views that write through), and the 1-based number of this update."""

    param: Tensor
    grad: Tensor
    state: dict[str, Any]
    step: int


def params_with_grad(optimizer: Optimizer, group: dict[str, Any],
                     init: Callable[[Tensor], dict[str, Tensor]]) -> Iterator[Slot]:
    """A Slot for each parameter of `group` that has a gradient. Its state, `init(p)` plus "step", is created
    on first use; "step" is incremented, so it is the number of the update about to happen."""
    for p in group["params"]:
        if p.grad is None:
            continue
        state = optimizer.state[p]
        if not state:
            state["step"] = 0
            state.update(init(p))
        state["step"] += 1
        if p.is_complex():
            yield Slot(real(p), real(p.grad), {name: real(value) for name, value in state.items()}, state["step"])
        else:
            yield Slot(p, p.grad, state, state["step"])
