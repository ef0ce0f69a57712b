"""The zoo: named rules (hand-designed baselines, PowerSign/AddSign and their decays, the paper's discoveries)
and `make_optimizer`, which turns a name or a rule into a ready optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch.optim.optimizer import Optimizer, ParamsT

from optsearch.dsl import Rule, RuleError, parse, vocab
from optsearch.optim.decay import cosine_decay, linear_decay, restart_decay
from optsearch.optim.rule_optimizer import RuleOptimizer
from optsearch.optim.signs import AddSign, PowerSign


@dataclass(frozen=True)
class ZooEntry:
    name: str
    rule: Rule
    description: str


_DECAYS = {"ld": ("linear", linear_decay), "cd": ("cosine", cosine_decay), "rd": ("restart", restart_decay)}

_HAND_DESIGNED = (
    ("sgd", "g", "plain SGD"),
    ("adam", "adam", "Adam (β1 0.9, β2 0.999, ε 1e-8)"),
    ("rmsprop", "rmsprop", "RMSProp with Adam's bias-corrected second moment (β 0.999, ε 1e-8)"),
    ("momentum", "m", "SGD with momentum as a rule: the bias-corrected EMA of g (β 0.9). Tuned over an lr grid it is "
     "heavy-ball momentum 0.9 at a tenth of the lr, up to the bias correction of the first ~20 steps; "
     "make_optimizer('momentum') is torch's SGD(momentum=0.9)"),
    ("powersign", "g * exp(sign(g) * sign(m))", "PowerSign: g·e^(±1) as sign(g) agrees with sign(m)"),
    ("addsign", "(1 + sign(g) * sign(m)) * g", "AddSign: g·(1 ± 1) as sign(g) agrees with sign(m)"),
    *((f"powersign-{d}", f"g * exp({d} * sign(g) * sign(m))", f"PowerSign with {kind} sign decay")
      for d, (kind, _) in _DECAYS.items()),
    *((f"addsign-{d}", f"(1 + {d} * sign(g) * sign(m)) * g", f"AddSign with {kind} sign decay")
      for d, (kind, _) in _DECAYS.items()),
)

PAPER_RULES: tuple[str, ...] = (
    "(exp(sign(g)*sign(m)) + clip(g, 1e-4)) * g",
    "clip(m, 1e-4) * exp(v)",
    "m * exp(v)",
    "g * exp(sign(g)*sign(m))",
    "drop(g, 0.3) * exp(sign(g)*sign(m))",
    "m * exp(g^2)",
    "drop(m, 0.1) / (exp(g^2) + eps)",
    "drop(g, 0.1) * exp(sign(g)*sign(m))",
    "clip(rmsprop, 1e-5) + drop(m, 0.3)",
    "adam * exp(sign(g)*sign(m))",
    "adam * exp(m)",
    "g + drop(m, 0.3)",
    "drop(m, 0.1) * exp(g^3)",
    "g - clip(g^2, 1e-4)",
    "exp(g) - exp(m)",
    "drop(m, 0.3) * exp(1e-3*w)",
)
"""The paper's table of top rules, in its order; in the zoo as nos1 .. nos16."""

zoo: Mapping[str, ZooEntry] = MappingProxyType({
    name: ZooEntry(name, parse(text), description)
    for name, text, description in (
        *_HAND_DESIGNED,
        *((f"nos{i}", text, f"the paper's discovered rule #{i}") for i, text in enumerate(PAPER_RULES, 1)),
    )
})
"""Name -> ZooEntry, read-only."""


NAMES = ", ".join(name for name, *_ in _HAND_DESIGNED) + f", nos1..nos{len(PAPER_RULES)}"
"""The zoo's names, briefly, for error messages."""


def resolve(name_or_text: str | Rule) -> Rule:
    """The Rule a zoo name or infix rule text stands for (a Rule is returned as is).

    Raises RuleError (one line, naming the input and the zoo's names) for an unknown name or bad text, and
    TypeError for anything but a str or Rule."""
    if isinstance(name_or_text, Rule):
        return name_or_text
    if not isinstance(name_or_text, str):
        raise TypeError(f"a rule is a Rule, rule text or zoo name, got {type(name_or_text).__name__}")
    if name_or_text in zoo:
        return zoo[name_or_text].rule
    try:
        return parse(name_or_text)
    except RuleError as err:
        where = "" if err.position is None else f" at position {err.position}"
        raise RuleError(f"{name_or_text!r} is neither an optimizer name nor a rule ({err.message}{where})",
                        allowed=f"a zoo name ({NAMES}) or rule text such as 'g * exp(sign(g) * sign(m))'") from None


def make_optimizer(name_or_rule: str | Rule, params: ParamsT, lr: float, total_steps: int | None = None,
                   seed: int | None = None, weight_decay: float = 0.0) -> Optimizer:
    """An optimizer from a zoo name, a Rule or infix rule text.

    Names with a faster equivalent get it, step for step the same as the zoo rule: `sgd` and `adam` are
    torch's SGD and Adam(eps=1e-8), `powersign[-ld|-cd|-rd]` and `addsign[-…]` are PowerSign and AddSign
    (decays over `total_steps`). `momentum` is torch's SGD(momentum=0.9), as the transfer benchmark has always
    run it: not step for step its zoo rule `m` (an EMA, so lr·(1−β) per gradient, and bias-corrected), which is
    what a search or the funnel trains. Everything else runs as a RuleOptimizer.

    `weight_decay` is decoupled (AdamW's θ ← θ − lr·wd·θ before the step) for every zoo name and rule, so
    `adam` with weight decay is torch's AdamW, and `sgd` torch's SGD(weight_decay) (the same update for plain
    SGD). `momentum` gets torch SGD's own, L2 weight decay (added to the gradient).
    """
    if name_or_rule == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name_or_rule == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name_or_rule == "adam":
        if weight_decay:
            return torch.optim.AdamW(params, lr=lr, eps=vocab.ADAM_EPS, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, eps=vocab.ADAM_EPS)
    if isinstance(name_or_rule, str) and name_or_rule in zoo:
        family, _, decay = name_or_rule.partition("-")
        if family in ("powersign", "addsign"):
            if decay and total_steps is None:
                raise ValueError(f"{name_or_rule} decays its sign term over total_steps: pass total_steps=T")
            sign_decay = _DECAYS[decay][1](total_steps) if decay else None
            return (PowerSign if family == "powersign" else AddSign)(params, lr=lr, sign_decay=sign_decay,
                                                                     weight_decay=weight_decay)
    return RuleOptimizer(params, resolve(name_or_rule), lr=lr, total_steps=total_steps, seed=seed,
                         weight_decay=weight_decay)
