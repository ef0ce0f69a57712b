"""The vocabulary of the rule language (paper.md): operands, unary and binary functions.

Each entry carries its token (what the controller emits and the trial store records), how it is
written in infix and in LaTeX, and — for functions — the torch function that computes it. Operands
are only named here: computing their values (running averages, noise, decays) is the optimizer's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

BETAS: dict[str, float] = {"m": 0.9, "v": 0.999, "y": 0.999}
"""Decay rates of the running averages of g, g² and g³ behind the operands m, v, y."""
ADAM_EPS = 1e-8
"""ε in `adam` = m̂ / (sqrt(v̂) + ε) and `rmsprop` = g / (sqrt(v̂) + ε)."""
EPS_STD = 0.01
"""Standard deviation of the `eps` operand (the paper's N(0, 0.01), read as a std)."""
EPS_T_VARIANCE_DECAY = 0.55
"""`eps_t` has variance 1 / (1 + s)^0.55 at s = step - 1."""
DIV_DELTA = 1e-8
"""δ in the binary `x / (y + δ)`."""


@dataclass(frozen=True)
class Operand:
    """A leaf of a rule: a value the optimizer computes for every parameter at every step."""

    token: str
    latex: str
    state: tuple[str, ...] = ()  # running averages it reads: "m", "v", "y" (decay rates in BETAS)
    needs_total_steps: bool = False
    stochastic: bool = False


@dataclass(frozen=True)
class Unary:
    token: str
    fmt: str  # infix template, "{}" is the argument
    latex: str  # LaTeX template, "{}" is the argument
    fn: Callable[..., Tensor]  # fn(x, generator) -> Tensor
    inplace: Callable[..., Tensor]  # the same, overwriting x (for intermediates the evaluator owns)
    stochastic: bool = False


@dataclass(frozen=True)
class Binary:
    token: str
    symbol: str  # infix operator; "" for keep-left, which has no infix form
    latex: str  # LaTeX template with "{0}" and "{1}"
    fn: Callable[[Tensor, Tensor], Tensor]
    inplace: Callable[[Tensor, Tensor], Tensor] | None = None  # the same, overwriting x


BASE_OPERANDS: tuple[Operand, ...] = (
    Operand("g", "g"),
    Operand("g^2", "g^2"),
    Operand("g^3", "g^3"),
    Operand("m", r"\hat m", state=("m",)),
    Operand("v", r"\hat v", state=("v",)),
    Operand("y", r"\hat y", state=("y",)),
    Operand("sign(g)", r"\operatorname{sign}(g)"),
    Operand("sign(m)", r"\operatorname{sign}(m)", state=("m",)),
    Operand("1", "1"),
    Operand("2", "2"),
    Operand("eps", r"\epsilon", stochastic=True),
    Operand("1e-4*w", r"10^{-4} w"),
    Operand("1e-3*w", r"10^{-3} w"),
    Operand("1e-2*w", r"10^{-2} w"),
    Operand("1e-1*w", r"10^{-1} w"),
    Operand("adam", r"\mathrm{adam}", state=("m", "v")),
    Operand("rmsprop", r"\mathrm{rmsprop}", state=("v",)),
)
"""The 17 operands of the paper's first search."""

DECAY_PERIODS: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Periods n allowed in `cd(n)` and `rd(n)`; the paper does not list its set, so this one is ours."""
CD_DEFAULT, RD_DEFAULT = 0.5, 1.0  # plain `cd` is cd(0.5), plain `rd` is rd(1)


def _num(x: float) -> str:
    return f"{x:g}"


def cd_token(n: float) -> str:
    return "cd" if n == CD_DEFAULT else f"cd({_num(n)})"


def rd_token(n: float) -> str:
    return "rd" if n == RD_DEFAULT else f"rd({_num(n)})"


PERIODIC_DECAYS: dict[str, Callable[[float], str]] = {"cd": cd_token, "rd": rd_token}
"""Decays written `name(n)` with a period n from DECAY_PERIODS: name -> token of name(n)."""


_D = dict(needs_total_steps=True)
DECAY_OPERANDS: tuple[Operand, ...] = (
    Operand("ld", r"\mathrm{ld}", **_D),
    *(Operand(cd_token(n), rf"\mathrm{{cd}}_{{{_num(n)}}}", **_D) for n in DECAY_PERIODS),
    *(Operand(rd_token(n), rf"\mathrm{{rd}}_{{{_num(n)}}}", **_D) for n in DECAY_PERIODS),
    Operand("eps_t", r"\epsilon_t", stochastic=True),
)
"""Decay operands of the paper's second version: t is the step, T = total_steps."""

OPERANDS: dict[str, Operand] = {o.token: o for o in BASE_OPERANDS + DECAY_OPERANDS}

WEIGHT_SCALES: dict[str, float] = {"1e-4*w": 1e-4, "1e-3*w": 1e-3, "1e-2*w": 1e-2, "1e-1*w": 1e-1}


def _dropout(p: float) -> Callable[..., Tensor]:
    """Dropout with drop probability p; kept values are rescaled by 1/(1-p) (as TF's dropout, so the
    expected value of drop(x) is x)."""

    def drop(x: Tensor, generator: torch.Generator | None = None, inplace: bool = False) -> Tensor:
        # the mask as 1.0 / 0.0 in x's dtype, written over the uniform draws: a bool mask costs a conversion per use
        keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).ge_(p)
        return (x.mul_(keep) if inplace else keep.mul_(x)).div_(1.0 - p)

    return drop


CLIP_THRESHOLDS = ("1e-5", "1e-4", "1e-3")
DROP_PROBS = ("0.1", "0.3", "0.5")

UNARY: dict[str, Unary] = {
    u.token: u
    for u in (
        Unary("x", "{}", "{}", lambda x, generator=None: x, lambda x, generator=None: x),
        Unary("-x", "-{}", "-{}", lambda x, generator=None: torch.neg(x), lambda x, generator=None: x.neg_()),
        Unary("exp", "exp({})", r"e^{{{}}}", lambda x, generator=None: torch.exp(x),
              lambda x, generator=None: x.exp_()),
        Unary("log", "log|{}|", r"\log\left|{}\right|", lambda x, generator=None: torch.log(torch.abs(x)),
              lambda x, generator=None: x.abs_().log_()),
        Unary("sqrt", "sqrt|{}|", r"\sqrt{{\left|{}\right|}}", lambda x, generator=None: torch.sqrt(torch.abs(x)),
              lambda x, generator=None: x.abs_().sqrt_()),
        *(Unary(f"clip{c}", f"clip({{}}, {c})", rf"\operatorname{{{{clip}}}}_{{{{{c}}}}}\left({{}}\right)",
                lambda x, generator=None, c=float(c): torch.clamp(x, -c, c),
                lambda x, generator=None, c=float(c): x.clamp_(-c, c)) for c in CLIP_THRESHOLDS),
        *(Unary(f"drop{p}", f"drop({{}}, {p})", rf"\operatorname{{{{drop}}}}_{{{{{p}}}}}\left({{}}\right)",
                _dropout(float(p)), partial(_dropout(float(p)), inplace=True), stochastic=True) for p in DROP_PROBS),
        Unary("sign", "sign({})", r"\operatorname{{sign}}\left({}\right)", lambda x, generator=None: torch.sign(x),
              lambda x, generator=None: x.sign_()),
    )
}
"""The 12 unary functions; `log` and `sqrt` act on |x|, `clip` clips to [-c, c]."""


BINARY: dict[str, Binary] = {
    b.token: b
    for b in (
        Binary("add", "+", "{0} + {1}", torch.add, Tensor.add_),
        Binary("sub", "-", "{0} - {1}", torch.sub, Tensor.sub_),
        Binary("mul", "*", r"{0} \cdot {1}", torch.mul, Tensor.mul_),
        Binary("div", "/", r"\frac{{{0}}}{{{1} + \delta}}", lambda x, y: x / (y + DIV_DELTA),
               lambda x, y: x.div_(y + DIV_DELTA)),
        Binary("pow", "^", "{0}^{{{1}}}", torch.pow, Tensor.pow_),
        Binary("keep", "", "{0}", lambda x, y: x),
    )
}
"""The 6 binary functions; `div` is x / (y + 1e-8), `keep` keeps the left argument."""


def group_ref(k: int) -> str:
    """Token naming the result of group k (0-based) as an operand of a later group."""
    return f"o{k}"


_GROUP_REF = re.compile(r"o(0|[1-9][0-9]*)")


def parse_group_ref(token: str) -> int | None:
    """k for the token `o<k>` (ASCII digits, no leading zero: one spelling per group), else None."""
    match = _GROUP_REF.fullmatch(token)
    return int(match[1]) if match else None


def operand_choices(group: int, decays: bool = False) -> list[str]:
    """Tokens allowed in an operand slot of group `group` (0-based): base operands, optionally the
    decay operands, then the results of every earlier group."""
    names = [o.token for o in BASE_OPERANDS]
    if decays:
        names += [o.token for o in DECAY_OPERANDS]
    return names + [group_ref(k) for k in range(group)]


SLOT_KINDS = ("operand", "operand", "unary", "unary", "binary")
"""What each of the 5 tokens of a group is: b(u1(op1), u2(op2))."""
