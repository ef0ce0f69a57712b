"""The zoo: named rules (hand-designed baselines, PowerSign/AddSign and their decays, the paper's discoveries),
and `resolve`, which reads a zoo name or rule text as a Rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from optsearch.dsl import Rule, RuleError, parse
from optsearch.optim.decay import cosine_decay, linear_decay, restart_decay


@dataclass(frozen=True)
class ZooEntry:
    name: str
    rule: Rule
    description: str


SIGN_DECAYS = {"ld": ("linear", linear_decay), "cd": ("cosine", cosine_decay), "rd": ("restart", restart_decay)}
"""The sign decays of powersign-ld, addsign-cd, ...: suffix -> (kind, the decay of total_steps)."""

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
      for d, (kind, _) in SIGN_DECAYS.items()),
    *((f"addsign-{d}", f"(1 + {d} * sign(g) * sign(m)) * g", f"AddSign with {kind} sign decay")
      for d, (kind, _) in SIGN_DECAYS.items()),
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
