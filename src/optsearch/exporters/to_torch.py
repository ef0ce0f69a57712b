"""A rule as one standalone Python file: a `torch.optim.Optimizer` subclass that needs only torch.

The file follows torch's own optimizers: the class validates hyperparameters and keeps the books (lazy state,
step counts, param groups, state_dict with the noise generators), two functions do the math (one tensor at a
time, or `torch._foreach_*` over lists). The math is RuleOptimizer's, operation for operation.
"""

from __future__ import annotations

import re
from string import Template
from textwrap import wrap

from optsearch.dsl import vocab
from optsearch.dsl.expr import functions
from optsearch.dsl.rule import Rule
from optsearch.exporters.code import (
    DECAY_HELPERS,
    HELPER_ORDER,
    Program,
    constants,
    in_scope,
    program,
    py_str,
    wrap_words,
)

_HELPERS: dict[str, str] = {
    "scalar": '''
def scalar(value: float, like: Tensor) -> Tensor:
    """A 0-dim tensor in `like`'s dtype and device: constants and decays broadcast against the tensors."""
    return torch.tensor(value, dtype=like.dtype, device=like.device)
''',
    "bias_correction": '''
def bias_correction(beta: float, step: int) -> float:
    """1 - beta^t: dividing a running average started at zero by it removes the start's bias."""
    return 1.0 - beta**step
''',
    "adam": '''
def adam_update(m: Tensor, v: Tensor, step: int) -> Tensor:
    """adam = m_hat / (sqrt(v_hat) + eps), computed as m / (sqrt(v) c1 / sqrt(c2) + c1 eps) with c = 1 - beta^t."""
    c1 = bias_correction(BETA_M, step)
    denom = torch.sqrt(v) * (c1 / math.sqrt(bias_correction(BETA_V, step))) + c1 * ADAM_EPS
    return torch.reciprocal(denom) * m


def adam_updates(ms: list[Tensor], vs: list[Tensor], steps: list[int]) -> list[Tensor]:
    """adam_update over lists of tensors."""
    c1 = [bias_correction(BETA_M, s) for s in steps]
    denom = torch._foreach_sqrt(vs)
    torch._foreach_mul_(denom, [c / math.sqrt(bias_correction(BETA_V, s)) for c, s in zip(c1, steps, strict=True)])
    torch._foreach_add_(denom, [c * ADAM_EPS for c in c1])
    torch._foreach_reciprocal_(denom)
    torch._foreach_mul_(denom, ms)
    return denom
''',
    "rmsprop": '''
def rmsprop_update(grad: Tensor, v: Tensor, step: int) -> Tensor:
    """rmsprop = g / (sqrt(v_hat) + eps)."""
    denom = torch.sqrt(v) / math.sqrt(bias_correction(BETA_V, step)) + ADAM_EPS
    return torch.reciprocal(denom) * grad


def rmsprop_updates(grads: list[Tensor], vs: list[Tensor], steps: list[int]) -> list[Tensor]:
    """rmsprop_update over lists of tensors."""
    denom = torch._foreach_sqrt(vs)
    torch._foreach_div_(denom, [math.sqrt(bias_correction(BETA_V, s)) for s in steps])
    torch._foreach_add_(denom, ADAM_EPS)
    torch._foreach_reciprocal_(denom)
    torch._foreach_mul_(denom, grads)
    return denom
''',
    **{name: Template(text).substitute(step_t="int", value_t="float", min="min", cos="math.cos")
       for name, text in DECAY_HELPERS.items()},
    "normal": '''
def normal(like: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """N(0, std^2) noise shaped like `like`, drawn from `generator`."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device).mul_(std)
''',
}

_MODULE = Template('''r"""$title: an optimizer exported by optsearch (Neural Optimizer Search) from the update rule

    $doc_infix

Standalone: it needs only torch. Step for step it computes what optsearch's
`RuleOptimizer(params, rule, lr, total_steps=..., seed=...)` computes for this rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
$typing
import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

RULE = $rule_str
$constants$helpers

class $name(Optimizer):
    r"""The update rule

        $doc_infix


    .. math::
        \\begin{aligned}
            &\\theta_t = \\theta_{t-1} - \\gamma \\lambda \\theta_{t-1} - \\gamma\\, \\Delta_t \\\\
            &\\Delta_t = $latex
        \\end{aligned}

    with learning rate :math:`\\gamma`, decoupled weight decay :math:`\\lambda` (as AdamW: the rule sees the decayed
    weights) and:

$where

    Args:
        params: iterable of parameters or param groups.
        lr: learning rate (default 1e-3).
        weight_decay: decoupled weight decay (default 0).$args_doc
        foreach: update all tensors of a group at once with `torch._foreach_*` kernels (True), one at a time
            (False), or by default at once off the CPU. Both give the same results.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, *, weight_decay: float = 0.0,
                 $signature foreach: bool | None = None) -> None:
        if isinstance(lr, Tensor):
            raise ValueError("Invalid lr: a Tensor lr is not supported; must be a finite number >= 0 (a Python number)")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr >= 0.0):
            raise ValueError(f"Invalid lr={lr!r}: the learning rate must be a finite number >= 0")
        if (isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float)
                or not (math.isfinite(weight_decay) and weight_decay >= 0.0)):
            raise ValueError(f"Invalid weight_decay={weight_decay!r}: must be a finite number >= 0")
        if foreach is not None and not isinstance(foreach, bool):
            raise ValueError(f"Invalid foreach={foreach!r}: must be None, True or False")$checks
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay,$defaults foreach=foreach))$init

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Update every parameter that has a gradient; returns the closure's loss if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # refuse before any parameter has moved
            if any(p.grad is not None and p.grad.is_sparse for p in group["params"]):
                raise RuntimeError("$name does not support sparse gradients")
        for group in self.param_groups:
            by_device: dict[torch.device, tuple[list[Tensor], list[Tensor], list[dict[str, Tensor]]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # lazily, only the buffers this rule reads
                    state["step"] = torch.tensor(0.0)$buffers
                state["step"] += 1
                grad = p.grad
                if p.is_complex():  # as torch's own optimizers: update the real view (real, imaginary)
                    p, grad = torch.view_as_real(p), torch.view_as_real(grad)
                    state = {key: torch.view_as_real(v) if v.is_complex() else v for key, v in state.items()}
                params, grads, states = by_device.setdefault(p.device, ([], [], []))
                params.append(p)
                grads.append(grad)
                states.append(state)
            for device, (params, grads, states) in by_device.items():
                foreach = group["foreach"] if group["foreach"] is not None else device.type != "cpu"
                update = _foreach_update if foreach else _single_tensor_update
                update(params, grads, states, [int(s["step"]) for s in states], lr=group["lr"],
                       weight_decay=group["weight_decay"]$call)
        return loss
$generator_methods

def _single_tensor_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]],
                          steps: list[int], *, lr: float, weight_decay: float$extra_params_single) -> None:
    for $loop_vars in zip($loop_lists, strict=True):
        if weight_decay != 0.0:
            param.mul_(1.0 - lr * weight_decay)
$single
        param.add_($delta, alpha=-lr)


def _foreach_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]],
                    steps: list[int], *, lr: float, weight_decay: float$extra_params_many) -> None:
    if weight_decay != 0.0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
$many
    torch._foreach_add_(params, $many_delta, alpha=-lr)
''')

_GENERATOR_METHODS = '''
    def _generator(self, device: torch.device) -> torch.Generator:
        """The noise generator of `device`, seeded on first use (one per device)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def state_dict(self) -> dict[str, Any]:
        """Torch's state dict plus the noise generators' states, so a resumed run draws the same noise."""
        state_dict = super().state_dict()
        state_dict["generators"] = {device: g.get_state() for device, g in self._generators.items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        generators = state_dict.pop("generators", {})
        super().load_state_dict(state_dict)
        for device, rng_state in generators.items():
            self._generator(torch.device(device)).set_state(rng_state.cpu())

    def __getstate__(self) -> dict[str, Any]:  # torch keeps defaults, state and groups; copies need the noise too
        return {**super().__getstate__(), "seed": self.seed, "_generators": self._generators}
'''

_WHERE = {
    "m": r":math:`\hat m = m_t / (1 - 0.9^t)`, :math:`m_t = 0.9\, m_{t-1} + 0.1\, g_t`",
    "v": r":math:`\hat v = v_t / (1 - 0.999^t)`, :math:`v_t = 0.999\, v_{t-1} + 0.001\, g_t^2`",
    "y": r":math:`\hat y = y_t / (1 - 0.999^t)`, :math:`y_t = 0.999\, y_{t-1} + 0.001\, g_t^3`",
}


def _where(rule: Rule, prog: Program) -> str:
    """The definitions the docstring's formula needs, in words."""
    parts = [_WHERE[s] for s in rule.state]
    ops = rule.operands
    if "sign(m)" in ops:
        parts.append(r"sign(m) of the raw :math:`m_t`")
    if "adam" in ops:
        parts.append(r"adam :math:`= \hat m / (\sqrt{\hat v} + 10^{-8})`")
    if "rmsprop" in ops:
        parts.append(r"rmsprop :math:`= g / (\sqrt{\hat v} + 10^{-8})`")
    if "div" in functions(rule.expr):
        parts.append(r":math:`\delta = 10^{-8}`")
    if rule.needs_total_steps:
        parts.append("decays read at step t - 1 of a schedule over T = total_steps")
    if "eps" in ops:
        parts.append(r":math:`\epsilon \sim N(0, 0.01^2)`")
    if "eps_t" in ops:
        parts.append(r":math:`\epsilon_t \sim N(0, 1/t^{0.55})`")
    if any(d.kind == "keep" for d in prog.draws):
        parts.append("dropout keeping each value with probability 1 - p and rescaling it by 1/(1 - p)")
    if prog.draws:
        parts.append("noise and dropout drawn from a seeded generator per device, saved in state_dict")
    return "\n".join("\n".join(wrap(f"- {p}", width=112, initial_indent="    ", subsequent_indent="      "))
                     for p in parts or ["nothing else"])


def _indent(lines: list[str], level: int) -> str:
    return "\n".join(" " * (4 * level) + line for line in lines)


def _tuple(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def _draw_noise(prog: Program) -> str:
    names = [d.name for d in prog.draws]
    return ('\n\ndef draw_noise(grad: Tensor, step: int, generator: torch.Generator) -> tuple[Tensor, ...]:\n'
            '    """This step\'s random tensors for one parameter, in a fixed order (eps, eps_t, then each\n'
            '    dropout\'s keep mask in evaluation order, as RuleOptimizer draws them), so both paths and a resumed\n'
            '    run draw alike."""\n'
            + _indent([d.code("torch") for d in prog.draws], 1) + f"\n    return {_tuple(names)}\n")


def _moments(rule: Rule, foreach: bool) -> list[str]:
    """Update the running averages first (as Adam does), with RuleOptimizer's kernels."""
    lines = []
    for s in rule.state:
        beta = f"BETA_{s.upper()}"
        if foreach:
            lines.append(f'{s}s = [state["{s}"] for state in states]')
            lines += {
                "m": [f"torch._foreach_lerp_(ms, grads, 1.0 - {beta})"],
                "v": [f"torch._foreach_mul_(vs, {beta})",
                      f"torch._foreach_addcmul_(vs, grads, grads, value=1.0 - {beta})"],
                "y": [f"torch._foreach_mul_(ys, {beta})",
                      f"torch._foreach_add_(ys, torch._foreach_pow(grads, 3), alpha=1.0 - {beta})"],
            }[s]
        else:
            lines.append(f'{s} = state["{s}"]')
            lines.append({
                "m": f"m.lerp_(grad, 1.0 - {beta})",
                "v": f"v.mul_({beta}).addcmul_(grad, grad, value=1.0 - {beta})",
                "y": f"y.mul_({beta}).add_(grad**3, alpha=1.0 - {beta})",
            }[s])
    return lines


def torch_module(rule: Rule, name: str) -> str:
    """The source of a standalone file defining `name`, a torch optimizer running `rule`."""
    prog = program(rule.expr)
    decays = sorted(t for t in rule.operands if vocab.OPERANDS[t].needs_total_steps)
    stochastic = bool(prog.draws)
    signature, checks, args_doc, extra, call, defaults, init = "", "", "", "", "", "", ""
    if decays:
        signature += "total_steps: int | None = None, "
        args_doc += "\n        total_steps: T, the number of training steps the decays run over (required)."
        checks += (
            "\n        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:"
            '\n            raise ValueError(f"Invalid total_steps={total_steps!r}: the decay operand(s) "'
            f'\n                             "{", ".join(decays)} of this rule run over T steps: pass total_steps=T, '
            'a positive int")')
        extra += ", total_steps: int"
        call += ' total_steps=group["total_steps"],'
        defaults += " total_steps=total_steps,"
    if stochastic:
        signature += "seed: int | None = None,"
        args_doc += ("\n        seed: seed of the noise generator; None draws one from torch's global RNG (so "
                     "`torch.manual_seed`\n            makes runs reproducible).")
        checks += ("\n        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):"
                   '\n            raise ValueError(f"Invalid seed={seed!r}: must be None or an int")')
        extra += ", generator: torch.Generator"
        call += " generator=self._generator(device),"
        init = ('\n        self.seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else seed'
                '\n        self._generators: dict[str, torch.Generator] = {}')
    buffers = "".join(f'\n                    state["{s}"] = torch.zeros_like(p, memory_format=torch.preserve_format)'
                      for s in rule.state)
    single = _moments(rule, foreach=False)
    many = _moments(rule, foreach=True)
    if stochastic:
        names = [d.name for d in prog.draws]
        single.append(f"{_tuple(names)} = draw_noise(grad, step, generator)")
        many.append("noise = [draw_noise(g, s, generator) for g, s in zip(grads, steps, strict=True)]")
        many.append(f"{_tuple(names)} = (list(d) for d in zip(*noise, strict=True))")
    single += [line.code("torch") for line in prog.operands + prog.nodes]
    body = "\n".join(single)
    loop = [(v, f"{v}s") for v in ("param", "grad", "state", "step") if v in ("param", "grad")
            or re.search(rf"\b{v}\b", body)]
    loop = list(zip(*loop, strict=True))
    many += [line.code("foreach") for line in prog.operands + prog.nodes]
    helpers = "".join("\n\n" + _HELPERS[h] for h in HELPER_ORDER if h in prog.helpers)
    if stochastic:
        helpers += _draw_noise(prog)
    module = _MODULE.safe_substitute(
        title=name, name=name, where=_where(rule, prog),
        helpers=helpers, typing="from typing import Any\n" if stochastic else "",
        rule_str=py_str(str(rule)), doc_infix=wrap_words(str(rule), 8), latex=wrap_words(rule.latex(), 16, width=100),
        loop_vars=", ".join(loop[0]), loop_lists=", ".join(loop[1]),
        args_doc=args_doc, checks=checks, defaults=defaults, init=init, buffers=buffers,
        call="," + "\n" + " " * 23 + call.strip().rstrip(",") if call else "",
        signature=signature.strip(), generator_methods=_GENERATOR_METHODS if stochastic else "",
        extra_params_single=",\n" + " " * 26 + extra.lstrip(", ") if extra else "",
        extra_params_many=",\n" + " " * 20 + extra.lstrip(", ") if extra else "",
        single=_indent(single, 2), many=_indent(many, 1), delta=prog.delta,
        many_delta=in_scope(prog.delta, "foreach"))
    return Template(module).substitute(constants=constants(rule.state, module))
