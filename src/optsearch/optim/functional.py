"""The math of every optimizer here (the classes only do bookkeeping): a rule's state, running averages and
update Δ (`compute_updates`), and the in-place steps `rule_update`, `powersign_update` and `addsign_update`,
built from the shared `update_moment`, `bias_correction` and `decay_weights`.

Everything here is elementwise, so it works on tensors of any shape, including slices of the stacked weights
of many models. `compute_updates` takes lists and uses `torch._foreach_*` kernels for the deterministic
operands; `compute_update` is the same code on one tensor. However a list is split (`foreach_chunks`), the
results are bit-identical: noise and dropout are drawn tensor by tensor in list order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import torch
from torch import Tensor

from optsearch.dsl import Rule, vocab
from optsearch.dsl.vocab import ADAM_EPS, BETAS, EPS_STD, EPS_T_VARIANCE_DECAY
from optsearch.optim.decay import SCHEDULES


@cache
def _decay(token: str, total_steps: int) -> Callable[[float], float]:
    return SCHEDULES[token](total_steps)


CPU_CHUNK_NUMEL = 1 << 16
"""On CPUs the list kernels run over chunks of tensors of at most this many elements together (or one larger
tensor): small models get the kernels' low overhead, large ones the cache locality of one tensor at a time
and temporaries the allocator can reuse (measured in benchmarks/optimizer_step.py)."""


def foreach_chunks(tensors: Sequence[Tensor], foreach: bool | None = None) -> list[slice]:
    """How to split `tensors` for `compute_updates`: all at once (foreach=True, or None off the CPU), one by
    one (False), or by default on CPUs in chunks of at most CPU_CHUNK_NUMEL elements."""
    if foreach or foreach is None and all(t.device.type != "cpu" for t in tensors):
        return [slice(0, len(tensors))]
    limit = 0 if foreach is False else CPU_CHUNK_NUMEL
    chunks, start, numel = [], 0, 0
    for i, t in enumerate(tensors):
        if i > start and numel + t.numel() > limit:
            chunks.append(slice(start, i))
            start, numel = i, 0
        numel += t.numel()
    chunks.append(slice(start, len(tensors)))
    return chunks


def init_state(rule: Rule, param: Tensor) -> dict[str, Tensor]:
    """Zero buffers for the running averages `rule` reads (only those: a rule without v allocates no v)."""
    return {name: torch.zeros_like(param, memory_format=torch.preserve_format) for name in rule.state}


def compute_update(rule: Rule, grad: Tensor, param: Tensor, state: dict[str, Tensor], step: int,
                   total_steps: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Update `state`'s running averages with `grad` in place and return Δ (shaped like `param`).

    `step` is this update's 1-based number (bias corrections use it; decays are read at step - 1, so the
    first update sees decay 1). `param` is the weight before the update; the caller applies w ← w − lr·Δ.
    Δ may be `grad` itself or a broadcast view (rule `g`, rule `1`): do not write into it.
    """
    return compute_updates(rule, [grad], [param], [state], [step], total_steps, generator)[0]


def compute_updates(rule: Rule, grads: Sequence[Tensor], params: Sequence[Tensor],
                    states: Sequence[dict[str, Tensor]], steps: Sequence[int], total_steps: int | None = None,
                    generator: torch.Generator | None = None) -> list[Tensor]:
    """`compute_update` for many tensors at once (each with its own state and step)."""
    if rule.needs_total_steps and total_steps is None:
        decays = sorted(t for t in rule.operands if vocab.OPERANDS[t].needs_total_steps)
        raise ValueError(f"rule {rule} uses the decay operand(s) {', '.join(decays)}, so total_steps is needed")
    if any(step < 1 for step in steps):
        raise ValueError(f"steps are 1-based (the number of this update), got {list(steps)}")
    grads = list(grads)
    _update_moments(rule, grads, states)
    shared = _elementwise_operands(rule, grads, params, states, steps)
    deltas = []
    for i, (grad, step) in enumerate(zip(grads, steps, strict=True)):
        values = {token: tensors[i] for token, tensors in shared.items()}
        values.update(_scalar_and_noise_operands(rule, grad, step, total_steps, generator))
        delta = rule.apply(values, generator)
        deltas.append(delta if delta.shape == grad.shape else delta.expand_as(grad))
    return deltas


def rule_update(rule: Rule, params: list[Tensor], grads: list[Tensor], states: Sequence[dict[str, Tensor]],
                steps: Sequence[int], *, lr: float, weight_decay: float = 0.0, total_steps: int | None = None,
                generator: torch.Generator | None = None) -> None:
    """One RuleOptimizer step of `params` in place: decoupled weight decay, then θ ← θ − lr·Δ."""
    decay_weights(params, lr, weight_decay)
    deltas = compute_updates(rule, grads, params, states, steps, total_steps, generator)
    torch._foreach_add_(params, deltas, alpha=-lr)


def powersign_update(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], decays: Sequence[float], *,
                     lr: float, base: float, beta: float, weight_decay: float = 0.0) -> None:
    """One PowerSign step in place (TensorFlow's semantics, paper.md): m ← β·m + (1 − β)·g, then
    θ ← θ − lr·base^(d·sign(g)·sign(m))·g with each tensor's sign decay d."""
    def factor_(s: list[Tensor]) -> None:
        # base^(d·s) = e^(c·s) with c = d·ln(base) takes the values e^-c, 1, e^c at s = -1, 0, 1, which is
        # 1 + (e^c − 1)·leaky_relu(s, slope e^-c): exact there, and much cheaper than exp on CPUs.
        cs = [d * math.log(base) for d in decays]
        for x, c in zip(s, cs, strict=True):
            torch.nn.functional.leaky_relu_(x, math.exp(-c))
        torch._foreach_mul_(s, [math.expm1(c) for c in cs])
        torch._foreach_add_(s, 1.0)

    _sign_update(params, grads, ms, factor_, lr=lr, beta=beta, weight_decay=weight_decay)


def addsign_update(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], decays: Sequence[float], *,
                   lr: float, alpha: float, beta: float, weight_decay: float = 0.0) -> None:
    """One AddSign step in place (TensorFlow's semantics, paper.md): m ← β·m + (1 − β)·g, then
    θ ← θ − lr·(α + d·sign(g)·sign(m))·g with each tensor's sign decay d."""
    def factor_(s: list[Tensor]) -> None:
        if any(d != 1.0 for d in decays):
            torch._foreach_mul_(s, list(decays))
        torch._foreach_add_(s, alpha)

    _sign_update(params, grads, ms, factor_, lr=lr, beta=beta, weight_decay=weight_decay)


def _sign_update(params: list[Tensor], grads: list[Tensor], ms: list[Tensor],
                 factor_: Callable[[list[Tensor]], None], *, lr: float, beta: float, weight_decay: float) -> None:
    """What PowerSign and AddSign share; `factor_` turns s = sign(g)·sign(m) into g's factor in place."""
    decay_weights(params, lr, weight_decay)
    update_moment(ms, grads, beta)  # m is updated before its use, without bias correction
    # sign(m)·g is exactly ±g or 0, so its sign is sign(g)·sign(m) even where g·m would underflow.
    s = torch._foreach_sign(ms)
    torch._foreach_mul_(s, grads)
    torch._foreach_sign_(s)
    factor_(s)
    torch._foreach_addcmul_(params, s, grads, value=-lr)


def update_moment(buffers: list[Tensor], values: list[Tensor], beta: float, order: int = 1) -> None:
    """The running average b ← β·b + (1 − β)·x^order in place, for x^1, x^2 or x^3 (optax's update_moment).

    One tensor is a list of one: the same kernels, so the same bits however a list is split."""
    if order == 1:
        torch._foreach_lerp_(buffers, values, 1.0 - beta)
        return
    torch._foreach_mul_(buffers, beta)
    if order == 2:
        torch._foreach_addcmul_(buffers, values, values, value=1.0 - beta)
    elif order == 3:
        torch._foreach_add_(buffers, torch._foreach_pow(values, 3), alpha=1.0 - beta)
    else:
        raise ValueError(f"Invalid order={order!r}: must be 1, 2 or 3")


def bias_correction(beta: float, step: int) -> float:
    """1 − β^t: a running average started at zero, divided by this after t updates, is unbiased."""
    return 1.0 - beta**step


def decay_weights(params: list[Tensor], lr: float, weight_decay: float) -> None:
    """Decoupled weight decay (AdamW, Loshchilov & Hutter): θ ← θ·(1 − lr·wd), before the optimizer's step."""
    if weight_decay != 0.0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)


def _update_moments(rule: Rule, grads: list[Tensor], states: Sequence[dict[str, Tensor]]) -> None:
    """m, v, y (running averages of g, g², g³) updated before Δ is computed, as Adam does."""
    for order, name in enumerate(("m", "v", "y"), 1):
        if name in rule.state:
            update_moment([s[name] for s in states], grads, BETAS[name], order)


def _bias_corrections(name: str, steps: Sequence[int]) -> list[float]:
    return [bias_correction(BETAS[name], step) for step in steps]


def _elementwise_operands(rule: Rule, grads: list[Tensor], params: Sequence[Tensor],
                          states: Sequence[dict[str, Tensor]], steps: Sequence[int]) -> dict[str, list[Tensor]]:
    """The deterministic operands that differ per element, each as a list over the tensors."""
    used = rule.operands
    out: dict[str, list[Tensor]] = {}
    if "g" in used:
        out["g"] = grads
    if "g^2" in used:
        out["g^2"] = torch._foreach_mul(grads, grads)
    if "g^3" in used:
        out["g^3"] = torch._foreach_pow(grads, 3)
    for name in ("m", "v", "y"):
        if name in used:  # bias-corrected
            out[name] = torch._foreach_div([s[name] for s in states], _bias_corrections(name, steps))
    if "sign(g)" in used:
        out["sign(g)"] = torch._foreach_sign(grads)
    if "sign(m)" in used:  # bias correction does not change the sign
        out["sign(m)"] = torch._foreach_sign([s["m"] for s in states])
    for token, scale in vocab.WEIGHT_SCALES.items():
        if token in used:
            out[token] = torch._foreach_mul(list(params), scale)
    if "adam" in used:
        # m̂ / (sqrt(v̂) + ε) == m / (sqrt(v)·c1/sqrt(c2) + c1·ε): one pass fewer than correcting m and v first.
        c1 = _bias_corrections("m", steps)
        denom = torch._foreach_sqrt([s["v"] for s in states])
        torch._foreach_mul_(denom, [a / math.sqrt(b) for a, b in zip(c1, _bias_corrections("v", steps), strict=True)])
        torch._foreach_add_(denom, [a * ADAM_EPS for a in c1])
        out["adam"] = _divide_into(denom, [s["m"] for s in states])
    if "rmsprop" in used:
        denom = torch._foreach_sqrt([s["v"] for s in states])
        torch._foreach_div_(denom, [math.sqrt(c) for c in _bias_corrections("v", steps)])
        torch._foreach_add_(denom, ADAM_EPS)
        out["rmsprop"] = _divide_into(denom, grads)
    return out


def _divide_into(denominators: list[Tensor], numerators: list[Tensor]) -> list[Tensor]:
    """numerators / denominators, written over the denominators: on CPUs a fresh large temporary costs more
    (page faults once the allocator has returned freed memory to the system) than one more pass."""
    torch._foreach_reciprocal_(denominators)
    torch._foreach_mul_(denominators, numerators)
    return denominators


def _scalar_and_noise_operands(rule: Rule, grad: Tensor, step: int, total_steps: int | None,
                               generator: torch.Generator | None) -> dict[str, Tensor]:
    """Constants and decays (0-dim) and noise (drawn here, `eps` before `eps_t`, so the order is fixed)."""
    used = rule.operands
    out: dict[str, Tensor] = {}
    for token in sorted(used & SCHEDULES.keys() | used & {"1", "2"}):
        value = float(token) if token in ("1", "2") else _decay(token, total_steps)(step - 1)
        out[token] = torch.tensor(value, dtype=grad.dtype, device=grad.device)
    if "eps" in used:
        out["eps"] = _normal(grad, EPS_STD, generator)
    if "eps_t" in used:
        out["eps_t"] = _normal(grad, step ** (-EPS_T_VARIANCE_DECAY / 2), generator)  # variance 1/(1+s)^0.55
    return out


def _normal(like: Tensor, std: float, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return noise.mul_(std)
