"""Policy-gradient training of the LSTM controller: REINFORCE (Zoph & Le 2017) and PPO (the paper).

Advantage = reward − baseline, the baseline an exponential moving average of past rewards (started at
the first reward). Rewards are buffered until `update_every` have arrived, then the controller takes its
update(s) on all of them, with an entropy bonus that keeps it exploring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optsearch.strategies.base import Strategy, Tokens
from optsearch.strategies.controller import Controller
from optsearch.validate import check_positive_int, is_real, refuse


@dataclass
class Sample:
    """A told rule string, waiting for its batch to fill."""

    tokens: Tokens
    logp: float  # log-probability under the policy that drew it ("old" policy of PPO)
    advantage: float


class Reinforce(Strategy):
    """LSTM controller trained by plain policy gradient, one Adam step per batch.

    lr defaults to 2e-3, not the paper's 1e-5, which suits its ~10^4 rules but barely moves the controller
    in the few hundred rules of a run on one machine. On a token-matching objective (tests/search) 5e-4
    learned too slowly in 400 rules, while 5e-3 made the controller collapse onto one string in some seeds.
    """

    name = "reinforce"
    epochs = 1

    def __init__(self, *, groups: int = 2, seed: int = 0, decays: bool = False, hidden: int = 150,
                 init_range: float = 0.08, lr: float = 2e-3, update_every: int = 20,
                 entropy_weight: float = 0.0015, baseline_decay: float = 0.9):
        super().__init__(groups=groups, seed=seed, decays=decays)
        check_positive_int("update_every", update_every)
        if not (is_real(baseline_decay) and 0.0 <= baseline_decay < 1.0):
            refuse("baseline_decay", baseline_decay, "a number in [0, 1)")
        self.update_every, self.entropy_weight, self.baseline_decay = update_every, entropy_weight, baseline_decay
        self.controller = Controller(self.space, hidden, init_range, self.generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.baseline: float | None = None
        self.pending: dict[Tokens, list[float]] = {}  # asked, not yet told: log-probs of each draw
        self.buffer: list[Sample] = []

    def _ask(self, n: int) -> list[Tokens]:
        ids, logp = self.controller.sample(n, self.generator)
        strings = self.controller.decode(ids)
        for tokens, lp in zip(strings, logp.tolist(), strict=True):
            self.pending.setdefault(tokens, []).append(lp)
        return strings

    def _tell(self, tokens: list[Tokens], rewards: list[float]) -> None:
        for string, reward in zip(tokens, rewards, strict=True):
            draws = self.pending.get(string)
            if draws:
                logp = draws.pop(0)
                if not draws:
                    del self.pending[string]
            else:  # not asked by this controller: learn from it as if the current policy had drawn it
                with torch.no_grad():
                    logp = self.controller.score(self.controller.encode([string]))[0].item()
            if self.baseline is None:
                self.baseline = reward
            self.buffer.append(Sample(string, logp, reward - self.baseline))
            self.baseline += (1.0 - self.baseline_decay) * (reward - self.baseline)
        if len(self.buffer) >= self.update_every:
            self._update(self.buffer)
            self.buffer = []

    def _update(self, batch: list[Sample]) -> None:
        ids = self.controller.encode([s.tokens for s in batch])
        old_logp = torch.tensor([s.logp for s in batch])
        advantage = torch.tensor([s.advantage for s in batch])
        for _ in range(self.epochs):
            logp, entropy = self.controller.score(ids)
            loss = -(self._objective(logp, old_logp, advantage) + self.entropy_weight * entropy).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def _objective(self, logp: Tensor, old_logp: Tensor, advantage: Tensor) -> Tensor:
        """Per-sample objective to maximize."""
        return logp * advantage

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "pending": [[list(tokens), draws] for tokens, draws in self.pending.items()],
            "buffer": [[list(s.tokens), s.logp, s.advantage] for s in self.buffer],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.pending = {tuple(tokens): list(draws) for tokens, draws in state["pending"]}
        self.buffer = [Sample(tuple(tokens), logp, adv) for tokens, logp, adv in state["buffer"]]


class PPO(Reinforce):
    """The paper's strategy: the controller takes `epochs` Adam steps per batch on PPO's clipped objective."""

    name = "ppo"

    def __init__(self, *, clip: float = 0.2, epochs: int = 4, **options: Any):
        super().__init__(**options)
        if not (is_real(clip) and clip > 0):
            refuse("clip", clip, "a finite number > 0")
        check_positive_int("epochs", epochs)
        self.clip, self.epochs = clip, epochs

    def _objective(self, logp: Tensor, old_logp: Tensor, advantage: Tensor) -> Tensor:
        ratio = torch.exp(logp - old_logp)
        return torch.minimum(ratio * advantage, ratio.clamp(1 - self.clip, 1 + self.clip) * advantage)
