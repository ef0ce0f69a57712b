"""Search strategies behind one ask/tell interface (`Strategy`), built by name with `make_strategy`."""

from __future__ import annotations

import inspect
from typing import Any

from optsearch.strategies.base import Strategy, state_from_bytes, state_to_bytes
from optsearch.strategies.controller import Controller
from optsearch.strategies.evolution import Evolution
from optsearch.strategies.ppo import PPO, Reinforce
from optsearch.strategies.random import RandomSearch
from optsearch.strategies.space import TokenSpace

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (PPO, Reinforce, RandomSearch, Evolution)}


def options(name: str) -> list[str]:
    """The keyword options strategy `name` accepts (besides groups, seed and decays)."""
    found: dict[str, None] = {}
    for cls in STRATEGIES[name].__mro__:
        if "__init__" in vars(cls):
            for p in inspect.signature(vars(cls)["__init__"]).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in ("groups", "seed", "decays"):
                    found[p.name] = None
    return list(found)


def make_strategy(name: str, *, groups: int = 2, seed: int = 0, decays: bool = False, **opts: Any) -> Strategy:
    """Build a strategy by name: "ppo" (the paper), "reinforce", "random" or "evolution"."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(sorted(STRATEGIES))}")
    unknown = sorted(set(opts) - set(options(name)))
    if unknown:
        raise ValueError(f"strategy {name!r} has no option {', '.join(unknown)}; "
                         f"its options: {', '.join(options(name))}")
    return STRATEGIES[name](groups=groups, seed=seed, decays=decays, **opts)


__all__ = [
    "STRATEGIES", "PPO", "Controller", "Evolution", "RandomSearch", "Reinforce", "Strategy", "TokenSpace",
    "make_strategy", "options", "state_from_bytes", "state_to_bytes",
]
