"""Random search: the baseline every learned strategy must beat."""

from __future__ import annotations

from optsearch.strategies.base import Strategy, Tokens


class RandomSearch(Strategy):
    """Draws every rule string uniformly from the space; rewards teach it nothing."""

    name = "random"

    def _ask(self, n: int) -> list[Tokens]:
        return [self.space.random_tokens(self.generator) for _ in range(n)]

    def _tell(self, tokens: list[Tokens], rewards: list[float]) -> None:
        pass
