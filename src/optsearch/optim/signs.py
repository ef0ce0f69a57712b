"""PowerSign and AddSign (Bello et al. 2017) with the exact semantics of TensorFlow's contrib optimizers.

Both scale the gradient up where its sign agrees with the sign of its running average and down where it
does not, and keep a single buffer m (Adam keeps two). A sign decay d(t) fades the effect to plain SGD.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from optsearch.optim import checks
from optsearch.optim.bookkeeping import CheckedOptimizer, next_step, params_with_grad
from optsearch.optim.functional import addsign_update, foreach_chunks, powersign_update


def _zero_m(p: Tensor) -> dict[str, Tensor]:
    return {"m": torch.zeros_like(p, memory_format=torch.preserve_format)}


class _SignOptimizer(CheckedOptimizer):
    """Shared bookkeeping: the buffer m, step counts and the sign decay; the math is `_kernel`."""

    group_checks = {**CheckedOptimizer.group_checks, "beta": checks.decay_rate}

    def __init__(self, params: ParamsT, defaults: dict[str, Any], sign_decay: Callable[[int], float] | None):
        if sign_decay is not None and not callable(sign_decay):
            raise ValueError(f"Invalid sign_decay={sign_decay!r}: must be None or a callable step -> factor, "
                             f"e.g. optsearch.optim.cosine_decay(total_steps)")
        super().__init__(params, defaults)
        # Not a hyperparameter in `defaults`: a callable in state_dict() would not load with torch.load's
        # default weights_only=True. Like a scheduler's lambda, it is passed again when resuming.
        self.sign_decay = sign_decay

    def __getstate__(self) -> dict[str, Any]:  # torch keeps only defaults, state and groups; copies need the rest
        return {**super().__getstate__(), "sign_decay": self.sign_decay}

    def _kernel(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], ms: list[Tensor],
                decays: list[float]) -> None:
        raise NotImplementedError

    def _plan_group(self, group: dict[str, Any]) -> list[float]:
        """The sign decay of each parameter with a gradient at this update, refused unless a finite number."""
        decays = []
        for p in group["params"]:
            if p.grad is not None and self.sign_decay is None:
                decays.append(1.0)
            elif p.grad is not None:
                step = next_step(self, p) - 1
                value = self.sign_decay(step)
                one = isinstance(value, numbers.Real) or isinstance(value, Tensor) and value.numel() == 1
                if not (one and math.isfinite(value)):
                    raise ValueError(f"sign_decay({step}) returned {value!r}: must be a finite number")
                decays.append(float(value))
        return decays

    def _step_group(self, group: dict[str, Any], decays: list[float]) -> None:
        slots = list(params_with_grad(self, group, _zero_m))
        if not slots:
            return
        params, grads, ms = [s.param for s in slots], [s.grad for s in slots], [s.state["m"] for s in slots]
        for part in foreach_chunks(params, group["foreach"]):
            self._kernel(group, params[part], grads[part], ms[part], decays[part])


class PowerSign(_SignOptimizer):
    r"""PowerSign: scale g by :math:`\text{base}^{\pm d}` as its sign agrees or disagrees with its average's.

    .. math::
        \begin{aligned}
            &m_t = \beta m_{t-1} + (1 - \beta) g_t \qquad (m_0 = 0,\ \text{no bias correction})\\
            &\theta'_{t-1} = \theta_{t-1} - \gamma \lambda\, \theta_{t-1} \qquad (\text{decoupled weight decay})\\
            &\theta_t = \theta'_{t-1}
             - \gamma\, \text{base}^{\,d(t-1) \operatorname{sign}(g_t) \operatorname{sign}(m_t)} \, g_t
        \end{aligned}

    with :math:`\operatorname{sign}(0) = 0` and :math:`d \equiv 1` without a sign decay. As :math:`d \to 0` it
    becomes SGD. One state buffer (m) per parameter.

    Args:
        params: iterable of parameters or param groups.
        lr: learning rate γ (default 0.1).
        base: base of the power, > 0 (default e).
        beta: decay rate of m (default 0.9).
        sign_decay: d, a callable step -> factor such as ``linear_decay(T)``, ``cosine_decay(T)`` or
            ``restart_decay(T)``; the t-th update reads d(t − 1). Not saved in ``state_dict()``.
        foreach: update all tensors of a group at once with `torch._foreach_*` kernels (True), one at a time
            (False), or by default all at once off the CPU and in cache-sized chunks on CPUs (fastest there).
        weight_decay: λ, decoupled weight decay as in AdamW (default 0).
    """

    group_checks = {**_SignOptimizer.group_checks, "base": checks.positive}

    def __init__(self, params: ParamsT, lr: float = 0.1, base: float = math.e, beta: float = 0.9,
                 sign_decay: Callable[[int], float] | None = None, foreach: bool | None = None,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, base=base, beta=beta, foreach=foreach, weight_decay=weight_decay),
                         sign_decay)

    def _kernel(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], ms: list[Tensor],
                decays: list[float]) -> None:
        powersign_update(params, grads, ms, decays, lr=group["lr"], base=group["base"], beta=group["beta"],
                         weight_decay=group["weight_decay"])


class AddSign(_SignOptimizer):
    r"""AddSign: scale g by :math:`\alpha \pm d` as its sign agrees or disagrees with its average's.

    .. math::
        \begin{aligned}
            &m_t = \beta m_{t-1} + (1 - \beta) g_t \qquad (m_0 = 0,\ \text{no bias correction})\\
            &\theta'_{t-1} = \theta_{t-1} - \gamma \lambda\, \theta_{t-1} \qquad (\text{decoupled weight decay})\\
            &\theta_t = \theta'_{t-1} - \gamma \left(\alpha + d(t-1)\operatorname{sign}(g_t)\operatorname{sign}(m_t)
             \right) g_t
        \end{aligned}

    with :math:`\operatorname{sign}(0) = 0` and :math:`d \equiv 1` without a sign decay. As :math:`d \to 0` it
    becomes SGD with learning rate γα. One state buffer (m) per parameter.

    Args:
        params: iterable of parameters or param groups.
        lr: learning rate γ (default 0.1).
        alpha: α (default 1.0).
        beta: decay rate of m (default 0.9).
        sign_decay: d, a callable step -> factor such as ``linear_decay(T)``, ``cosine_decay(T)`` or
            ``restart_decay(T)``; the t-th update reads d(t − 1). Not saved in ``state_dict()``.
        foreach: update all tensors of a group at once with `torch._foreach_*` kernels (True), one at a time
            (False), or by default all at once off the CPU and in cache-sized chunks on CPUs (fastest there).
        weight_decay: λ, decoupled weight decay as in AdamW (default 0).
    """

    group_checks = {**_SignOptimizer.group_checks, "alpha": checks.finite}

    def __init__(self, params: ParamsT, lr: float = 0.1, alpha: float = 1.0, beta: float = 0.9,
                 sign_decay: Callable[[int], float] | None = None, foreach: bool | None = None,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, beta=beta, foreach=foreach, weight_decay=weight_decay),
                         sign_decay)

    def _kernel(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], ms: list[Tensor],
                decays: list[float]) -> None:
        addsign_update(params, grads, ms, decays, lr=group["lr"], alpha=group["alpha"], beta=group["beta"],
                       weight_decay=group["weight_decay"])
