"""PowerSign and AddSign (Bello et al. 2017) with the exact semantics of TensorFlow's contrib optimizers.

Both scale the gradient up where its sign agrees with the sign of its running average and down where it
does not, and keep a single buffer m (Adam keeps two). A sign decay d(t) fades the effect to plain SGD.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from optsearch.optim.bookkeeping import params_with_grad
from optsearch.optim.functional import foreach_chunks


def _check_common(lr: float, beta: float, sign_decay: Callable[[int], float] | None) -> None:
    if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr >= 0.0:
        raise ValueError(f"Invalid learning rate lr={lr!r}: must be a number >= 0")
    if not isinstance(beta, int | float) or not 0.0 <= beta < 1.0:
        raise ValueError(f"Invalid beta={beta!r}: must be in [0, 1)")
    if sign_decay is not None and not callable(sign_decay):
        raise ValueError(f"Invalid sign_decay={sign_decay!r}: must be None or a callable step -> factor, "
                         f"e.g. optsearch.optim.cosine_decay(total_steps)")


def _zero_m(p: Tensor) -> dict[str, Tensor]:
    return {"m": torch.zeros_like(p, memory_format=torch.preserve_format)}


class _SignOptimizer(Optimizer):
    """Shared bookkeeping: the buffer m, step counts, and s = sign(g)·sign(m) turned into g's factor."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any], sign_decay: Callable[[int], float] | None):
        super().__init__(params, defaults)
        # Not a hyperparameter in `defaults`: a callable in state_dict() would not load with torch.load's
        # default weights_only=True. Like a scheduler's lambda, it is passed again when resuming.
        self.sign_decay = sign_decay

    def __getstate__(self) -> dict[str, Any]:  # torch keeps only defaults, state and groups; copies need the rest
        return {**super().__getstate__(), "sign_decay": self.sign_decay}

    def _factor_(self, s: list[Tensor], decays: list[float], group: dict[str, Any]) -> None:
        """Turn the sign agreements s ∈ {-1, 0, 1} into the factor of g, in place."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, ms, decays = [], [], [], []
            for p, state in params_with_grad(self, group, _zero_m):
                params.append(p)
                grads.append(p.grad)
                ms.append(state["m"])
                decays.append(1.0 if self.sign_decay is None else float(self.sign_decay(state["step"] - 1)))
            if not params:
                continue
            for part in foreach_chunks(params, group["foreach"]):
                self._update(group, params[part], grads[part], ms[part], decays[part])
        return loss

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], ms: list[Tensor],
                decays: list[float]) -> None:
        torch._foreach_lerp_(ms, grads, 1.0 - group["beta"])  # m ← β·m + (1 − β)·g, before its use
        # sign(m)·g is exactly ±g or 0, so its sign is sign(g)·sign(m) even where g·m would underflow.
        s = torch._foreach_sign(ms)
        torch._foreach_mul_(s, grads)
        torch._foreach_sign_(s)
        self._factor_(s, decays, group)
        torch._foreach_addcmul_(params, s, grads, value=-group["lr"])


class PowerSign(_SignOptimizer):
    r"""PowerSign: scale g by :math:`\text{base}^{\pm d}` as its sign agrees or disagrees with its average's.

    .. math::
        \begin{aligned}
            &m_t = \beta m_{t-1} + (1 - \beta) g_t \qquad (m_0 = 0,\ \text{no bias correction})\\
            &\theta_t = \theta_{t-1} - \gamma\, \text{base}^{\,d(t-1) \operatorname{sign}(g_t) \operatorname{sign}(m_t)}
             \, g_t
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
    """

    def __init__(self, params: ParamsT, lr: float = 0.1, base: float = math.e, beta: float = 0.9,
                 sign_decay: Callable[[int], float] | None = None, foreach: bool | None = None) -> None:
        _check_common(lr, beta, sign_decay)
        if not isinstance(base, int | float) or not 0.0 < base < math.inf:
            raise ValueError(f"Invalid base={base!r}: must be a finite number > 0")
        super().__init__(params, dict(lr=lr, base=base, beta=beta, foreach=foreach), sign_decay)

    def _factor_(self, s: list[Tensor], decays: list[float], group: dict[str, Any]) -> None:
        # base^(d·s) = e^(c·s) with c = d·ln(base) takes the values e^-c, 1, e^c at s = -1, 0, 1, which is
        # 1 + (e^c − 1)·leaky_relu(s, slope e^-c): exact there, and much cheaper than exp on CPUs.
        cs = [d * math.log(group["base"]) for d in decays]
        for x, c in zip(s, cs, strict=True):
            F.leaky_relu_(x, math.exp(-c))
        torch._foreach_mul_(s, [math.expm1(c) for c in cs])
        torch._foreach_add_(s, 1.0)


class AddSign(_SignOptimizer):
    r"""AddSign: scale g by :math:`\alpha \pm d` as its sign agrees or disagrees with its average's.

    .. math::
        \begin{aligned}
            &m_t = \beta m_{t-1} + (1 - \beta) g_t \qquad (m_0 = 0,\ \text{no bias correction})\\
            &\theta_t = \theta_{t-1} - \gamma \left(\alpha + d(t-1)\operatorname{sign}(g_t)\operatorname{sign}(m_t)
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
    """

    def __init__(self, params: ParamsT, lr: float = 0.1, alpha: float = 1.0, beta: float = 0.9,
                 sign_decay: Callable[[int], float] | None = None, foreach: bool | None = None) -> None:
        _check_common(lr, beta, sign_decay)
        if not isinstance(alpha, int | float) or not math.isfinite(alpha):
            raise ValueError(f"Invalid alpha={alpha!r}: must be a finite number")
        super().__init__(params, dict(lr=lr, alpha=alpha, beta=beta, foreach=foreach), sign_decay)

    def _factor_(self, s: list[Tensor], decays: list[float], group: dict[str, Any]) -> None:
        if any(d != 1.0 for d in decays):
            torch._foreach_mul_(s, decays)
        torch._foreach_add_(s, group["alpha"])
