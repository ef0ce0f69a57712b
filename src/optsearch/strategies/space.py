"""The token space a strategy searches: which tokens each position of a rule string may hold.

A rule of n groups is 5n tokens; the choices at a position depend only on its group and slot kind
(operand slots of group k may also name the results of groups 0..k-1), never on earlier tokens. So a
string drawn slot by slot is always a valid rule, and uniform per slot is uniform over strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from optsearch.dsl import vocab
from optsearch.validate import check_positive_int

GROUP_SIZE = len(vocab.SLOT_KINDS)


class TokenSpace:
    """Rule strings of exactly `groups` groups, with or without the decay operands."""

    def __init__(self, groups: int, decays: bool = False):
        check_positive_int("groups", groups)
        self.groups, self.decays = groups, decays
        self.slots: tuple[tuple[str, ...], ...] = tuple(
            tuple(self._slot_choices(k, kind)) for k in range(groups) for kind in vocab.SLOT_KINDS
        )
        self.vocab: tuple[str, ...] = tuple(dict.fromkeys(t for choices in self.slots for t in choices))
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.vocab)}
        self.mask = torch.zeros(len(self.slots), len(self.vocab), dtype=torch.bool)
        """mask[position, vocab index]: the token may stand at that position."""
        for pos, choices in enumerate(self.slots):
            self.mask[pos, [self.index[t] for t in choices]] = True

    def _slot_choices(self, group: int, kind: str) -> Sequence[str]:
        if kind == "operand":
            return vocab.operand_choices(group, self.decays)
        return list(vocab.UNARY if kind == "unary" else vocab.BINARY)

    @property
    def length(self) -> int:
        return len(self.slots)

    def contains(self, tokens: Sequence[str]) -> bool:
        return len(tokens) == self.length and all(t in choices for t, choices in zip(tokens, self.slots, strict=True))

    def fit(self, tokens: Sequence[str]) -> tuple[str, ...] | None:
        """The tokens as a string of this space, or None if they don't fit. A rule with fewer groups is
        padded with groups `keep(o_last, 1)`, which leave its meaning unchanged."""
        tokens = tuple(tokens)
        n = len(tokens) // GROUP_SIZE
        if len(tokens) % GROUP_SIZE or not 1 <= n <= self.groups:
            return None
        for k in range(n, self.groups):
            tokens += (vocab.group_ref(k - 1), "1", "x", "x", "keep")
        return tokens if self.contains(tokens) else None

    def random_tokens(self, generator: torch.Generator) -> tuple[str, ...]:
        """A string drawn uniformly from the space."""
        return tuple(self.random_choice(pos, generator) for pos in range(self.length))

    def random_choice(self, position: int, generator: torch.Generator, exclude: str | None = None) -> str:
        """A token drawn uniformly from those allowed at `position`, other than `exclude`."""
        choices = [t for t in self.slots[position] if t != exclude]
        return choices[int(torch.randint(len(choices), (), generator=generator))]
