"""Exports: a rule written out as code a user takes home (a layer above optim: it names zoo rules).

    source = export("powersign", to="torch")         # a standalone torch.optim.Optimizer file
    source = export("g * exp(sign(g) * sign(m))", to="optax", name="found_rule")

The code is generated from the parsed, validated tree; identifiers in it come only from the vocabulary and a
name checked to be a Python identifier. The same rule always gives the same text.
"""

from __future__ import annotations

import keyword

from optsearch.dsl import Rule, RuleError
from optsearch.optim.zoo import resolve, zoo

TARGETS = ("torch", "optax")
"""What a rule can be exported to."""


def default_name(rule: str | Rule, to: str) -> str:
    """`powersign` -> `PowerSign` (torch) / `powersign` (optax); free rule text -> `FoundRule` / `found_rule`."""
    if isinstance(rule, str) and rule in zoo:
        if to == "optax":
            return rule.replace("-", "_")
        special = {"powersign": "PowerSign", "addsign": "AddSign", "rmsprop": "RMSProp", "sgd": "SGD"}
        family, _, decay = rule.partition("-")
        return special.get(family, family.capitalize()) + decay.upper()
    return "found_rule" if to == "optax" else "FoundRule"


def export(rule: str | Rule, to: str = "torch", name: str | None = None) -> str:
    """The source text of `rule` (a Rule, a zoo name or infix text) as a torch optimizer class or an optax
    transformation named `name` (default: from the zoo name, else FoundRule / found_rule)."""
    if to not in TARGETS:
        raise ValueError(f"cannot export to {to!r}; allowed: {', '.join(TARGETS)}")
    if name is None:
        name = default_name(rule, to)
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or keyword.iskeyword(name):
        raise ValueError(f"the name {name!r} is not a Python identifier (ASCII letters, digits, _; not a keyword)")
    resolved = resolve(rule)
    if to == "torch":
        from optsearch.exporters.to_torch import torch_module

        return torch_module(resolved, name)
    from optsearch.exporters.to_optax import optax_module

    return optax_module(resolved, name)


__all__ = ["TARGETS", "RuleError", "default_name", "export"]
