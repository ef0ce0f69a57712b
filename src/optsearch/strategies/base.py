"""The ask/tell interface every search strategy implements, and safe (de)serialization of its state.

The engine asks for rules, evaluates them (possibly out of order, in several batches) and tells their
rewards back. A strategy is seeded: the same seed and the same tells give the same asks. Its state is
plain data and tensors, so a checkpoint is stored with `state_to_bytes` and read back with
`torch.load(weights_only=True)`: loading a checkpoint never runs code.
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from optsearch.dsl import Rule
from optsearch.strategies.space import TokenSpace
from optsearch.validate import is_whole, refuse

Tokens = tuple[str, ...]


class Strategy(ABC):
    """Proposes rules of `groups` groups (with decay operands if `decays`) and learns from their rewards."""

    name: ClassVar[str]

    def __init__(self, *, groups: int = 2, seed: int = 0, decays: bool = False):
        self.space = TokenSpace(groups, decays)
        self.generator = torch.Generator().manual_seed(seed)

    def ask(self, n: int) -> list[Rule]:
        """Propose n rules; their `tokens` are the exact strings the strategy drew."""
        if not (is_whole(n) and n >= 0):
            refuse("n", n, "a whole number >= 0")
        return [Rule.from_tokens(tokens) for tokens in self._ask(n)]

    def tell(self, rules: Sequence[Rule], rewards: Sequence[float]) -> None:
        """Report rewards (higher is better) for rules, asked earlier by this strategy or not: a rule with
        fewer groups than the space is read as padded (`TokenSpace.fit`); one that doesn't fit is an error."""
        if len(rules) != len(rewards):
            raise ValueError(f"got {len(rules)} rules but {len(rewards)} rewards")
        tokens = []
        for rule in rules:
            fitted = self.space.fit(rule.tokens)
            if fitted is None:
                raise ValueError(f"rule {rule} does not fit this search ({self.space.groups} groups, "
                                 f"decays={self.space.decays})")
            tokens.append(fitted)
        values = [float(r) for r in rewards]
        if not all(math.isfinite(r) for r in values):
            refuse("rewards", values, "finite numbers")
        self._tell(tokens, values)

    @abstractmethod
    def _ask(self, n: int) -> list[Tokens]: ...

    @abstractmethod
    def _tell(self, tokens: list[Tokens], rewards: list[float]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this strategy is: plain data and tensors."""
        return {"strategy": self.name, "groups": self.space.groups, "decays": self.space.decays,
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = (self.name, self.space.groups, self.space.decays)
        theirs = (state["strategy"], state["groups"], state["decays"])
        if mine != theirs:
            raise ValueError(f"state of (strategy, groups, decays) = {theirs} cannot be loaded into {mine}")
        self.generator.set_state(state["rng"])


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """Serialize a `state_dict()` for storage (e.g. a SQLite blob)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    """Read back `state_to_bytes` output; only plain data and tensors load (weights_only)."""
    return torch.load(io.BytesIO(data), weights_only=True)
