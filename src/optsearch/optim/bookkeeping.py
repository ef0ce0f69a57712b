"""What every optimizer here does around its math (torch's split: object = bookkeeping, function = math):
check hyperparameters per param group, refuse sparse gradients before touching anything, create state
lazily and count steps, and tag `state_dict()` with who saved it so a foreign one fails at load time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    `add_param_group`) are validated, and whose `step` runs `_step_group` on each group once no gradient
    is sparse."""

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

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._refuse_sparse_grads()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _refuse_sparse_grads(self) -> None:
        """All at once before the step, so a sparse gradient leaves every parameter and state as it was."""
        for i, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients (param group {i} "
                                       f"has one, for a parameter of shape {tuple(p.shape)}): use dense gradients")

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


def params_with_grad(optimizer: Optimizer, group: dict[str, Any],
                     init: Callable[[Tensor], dict[str, Tensor]]) -> Iterator[tuple[Tensor, dict[str, Any]]]:
    """Each parameter of `group` that has a gradient, with its state: `init(p)` plus "step", created on
    first use; "step" is incremented, so it is the 1-based number of the update about to happen."""
    for p in group["params"]:
        if p.grad is None:
            continue
        state = optimizer.state[p]
        if not state:
            state["step"] = 0
            state.update(init(p))
        state["step"] += 1
        yield p, state
