"""Regularized (aging) evolution over rule strings (Real et al. 2019), as Lion's search used.

The first `population_size` asks are the warm-start rules, then uniform random strings; after that each
ask mutates the best of `sample_size` members drawn from the population. Every told rule joins the
population and, once it is full, the oldest member dies: age, not reward, decides who leaves, which
keeps the search from clinging to early lucky rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from optsearch.dsl import Rule, parse
from optsearch.strategies.base import Strategy, Tokens
from optsearch.strategies.space import GROUP_SIZE
from optsearch.validate import check_int_in, check_positive_int, is_real, refuse


@dataclass
class Member:
    tokens: Tokens
    reward: float


class Evolution(Strategy):
    """Aging evolution with tournament selection and one-token or one-group mutations.

    `warm_start`: rules (Rule objects or infix text) to seed the population with; those that don't fit
    the space (more groups, or decay operands when `decays` is off) are skipped, shorter ones padded.
    """

    name = "evolution"

    def __init__(self, *, groups: int = 2, seed: int = 0, decays: bool = False, population_size: int = 64,
                 sample_size: int = 16, group_mutation_prob: float = 0.2,
                 warm_start: Sequence[Rule | str] = ()):
        super().__init__(groups=groups, seed=seed, decays=decays)
        check_positive_int("population_size", population_size)
        check_int_in("sample_size", sample_size, 1, population_size)
        if not (is_real(group_mutation_prob) and 0.0 <= group_mutation_prob <= 1.0):
            refuse("group_mutation_prob", group_mutation_prob, "a number in [0, 1]")
        self.population_size, self.sample_size = population_size, sample_size
        self.group_mutation_prob = group_mutation_prob
        self.initial = self._fit_all(warm_start)[:population_size]
        self.population: deque[Member] = deque()
        self.asked = 0

    def _fit_all(self, rules: Sequence[Rule | str]) -> list[Tokens]:
        fitted = (self.space.fit((parse(r) if isinstance(r, str) else r).tokens) for r in rules)
        return [tokens for tokens in fitted if tokens is not None]

    def _ask(self, n: int) -> list[Tokens]:
        out = []
        for _ in range(n):
            if self.asked < len(self.initial):
                out.append(self.initial[self.asked])
            elif self.asked < self.population_size or not self.population:
                out.append(self.space.random_tokens(self.generator))
            else:
                out.append(self.mutate(self._tournament().tokens))
            self.asked += 1
        return out

    def _tell(self, tokens: list[Tokens], rewards: list[float]) -> None:
        for string, reward in zip(tokens, rewards, strict=True):
            self.population.append(Member(string, reward))
            if len(self.population) > self.population_size:
                self.population.popleft()

    def _tournament(self) -> Member:
        k = min(self.sample_size, len(self.population))
        picks = torch.randperm(len(self.population), generator=self.generator)[:k].tolist()
        return max((self.population[i] for i in picks), key=lambda m: m.reward)

    def mutate(self, tokens: Tokens) -> Tokens:
        """A copy with one token changed to another valid at its position, or (with probability
        `group_mutation_prob`) one whole group redrawn; group references stay valid as the choices at a
        position only name earlier groups."""
        out = list(tokens)
        if float(torch.rand((), generator=self.generator)) < self.group_mutation_prob:
            k = int(torch.randint(self.space.groups, (), generator=self.generator))
            for pos in range(k * GROUP_SIZE, (k + 1) * GROUP_SIZE):
                out[pos] = self.space.random_choice(pos, self.generator)
        else:
            pos = int(torch.randint(self.space.length, (), generator=self.generator))
            out[pos] = self.space.random_choice(pos, self.generator, exclude=out[pos])
        return tuple(out)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "population": [[list(m.tokens), m.reward] for m in self.population],
            "asked": self.asked,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = deque(Member(tuple(tokens), reward) for tokens, reward in state["population"])
        self.asked = state["asked"]
