"""What every optimizer here does before its math: walk a group's parameters that have gradients, creating
their state on first use and counting their steps (as torch's own optimizers do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor
from torch.optim import Optimizer


def params_with_grad(optimizer: Optimizer, group: dict[str, Any],
                     init: Callable[[Tensor], dict[str, Tensor]]) -> Iterator[tuple[Tensor, dict[str, Any]]]:
    """Each parameter of `group` that has a dense gradient, with its state: `init(p)` plus "step", created on
    first use; "step" is incremented, so it is the 1-based number of the update about to happen."""
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"{type(optimizer).__name__} does not support sparse gradients")
        state = optimizer.state[p]
        if not state:
            state["step"] = 0
            state.update(init(p))
        state["step"] += 1
        yield p, state
