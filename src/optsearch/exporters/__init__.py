"""Exports: a rule written out as code a user takes home (a layer above optim: it names zoo rules).

    source = export("powersign", to="torch")         # a standalone torch.optim.Optimizer file
    source = export("g * exp(sign(g) * sign(m))", to="optax", name="found_rule")

The code is generated from the parsed, validated tree; identifiers in it come only from the vocabulary and a
name checked to be a Python identifier that the file does not already use. The same rule always gives the same text.
"""

from __future__ import annotations

import builtins
import keyword
import symtable
from collections.abc import Callable
from dataclasses import dataclass

from optsearch.dsl import Rule, RuleError
from optsearch.exporters.to_optax import optax_module, state_name
from optsearch.exporters.to_torch import torch_module
from optsearch.optim.zoo import resolve, zoo


@dataclass(frozen=True)
class Target:
    """What a rule can be exported to: the generated module, and the module-level names a chosen name becomes."""

    module: Callable[[Rule, str], str]
    defines: Callable[[str], tuple[str, ...]]
    kind: str  # what the chosen name names, for messages


TARGETS: dict[str, Target] = {
    "torch": Target(torch_module, lambda name: (name,), "optimizer class"),
    "optax": Target(optax_module, lambda name: (name, state_name(name)), "transformation function"),
}
"""What a rule can be exported to."""

_PLACEHOLDER = "Placeholder"
"""The name the file is generated with to read the names it uses (those it defines from this one left out)."""


def default_name(rule: str | Rule, to: str) -> str:
    """`powersign` -> `PowerSign` (torch) / `powersign` (optax); free rule text -> `FoundRule` / `found_rule`."""
    if isinstance(rule, str) and rule in zoo:
        if to == "optax":
            return rule.replace("-", "_")
        special = {"powersign": "PowerSign", "addsign": "AddSign", "rmsprop": "RMSProp", "sgd": "SGD"}
        family, _, decay = rule.partition("-")
        return special.get(family, family.capitalize()) + decay.upper()
    return "found_rule" if to == "optax" else "FoundRule"


def module_names(source: str) -> frozenset[str]:
    """The module-level names `source` binds or reads (imports, classes, functions, constants, builtins it calls,
    also from inside its functions): a class or function of the same name would replace one of them."""
    table = symtable.symtable(source, "<export>", "exec")
    names, scopes = {s.get_name() for s in table.get_symbols()}, list(table.get_children())
    while scopes:
        scope = scopes.pop()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_global()}
        scopes += scope.get_children()
    return frozenset(names)


def reserved_names(rule: Rule, to: str) -> frozenset[str]:
    """The names the generated `to` file of `rule` uses itself (read from the file, so this cannot drift from the
    templates), and every builtin: a name among them is refused."""
    target = TARGETS[to]
    return (module_names(target.module(rule, _PLACEHOLDER)) - set(target.defines(_PLACEHOLDER))) | set(dir(builtins))


def _check_name(name: object, rule: Rule, to: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or keyword.iskeyword(name):
        raise ValueError(f"the name {name!r} is not a Python identifier (ASCII letters, digits, _; not a keyword)")
    target = TARGETS[to]
    reserved = reserved_names(rule, to)
    for defined in target.defines(name):
        if defined.startswith("__") and defined.endswith("__"):
            why = "a dunder name (reserved by Python)"
        elif defined in dir(builtins):
            why = "a Python builtin"
        elif defined in reserved:
            why = f"a name the generated {to} file uses"
        else:
            continue
        own = sorted(reserved - set(dir(builtins)), key=str.lower)
        raise ValueError(f"cannot name the {target.kind} {name!r}: {defined!r} is {why}; allowed: an identifier "
                         f"that is not a keyword, builtin, dunder or one of the file's names ({', '.join(own)})")


def export(rule: str | Rule, to: str = "torch", name: str | None = None) -> str:
    """The source text of `rule` (a Rule, a zoo name or infix text) as a torch optimizer class or an optax
    transformation named `name` (default: from the zoo name, else FoundRule / found_rule)."""
    if to not in TARGETS:
        raise ValueError(f"cannot export to {to!r}; allowed: {', '.join(TARGETS)}")
    resolved = resolve(rule)
    if name is None:
        name = default_name(rule, to)
    _check_name(name, resolved, to)
    return TARGETS[to].module(resolved, name)


__all__ = ["TARGETS", "RuleError", "default_name", "export", "reserved_names"]
