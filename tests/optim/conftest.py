"""Shared fixtures: a tiny deterministic classification problem to train with any optimizer."""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class Problem:
    """A 6-16-3 MLP on fixed random data; `run` trains a fresh copy and returns its final parameters."""

    def __init__(self, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(64, 6, generator=gen, dtype=torch.float64)
        self.y = torch.randint(0, 3, (64,), generator=gen)
        self.seed = seed

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()

    def train(self, model: nn.Module, opt: torch.optim.Optimizer, steps: int, scheduler=None) -> None:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(self.x), self.y).backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()

    def run(self, make_opt: Callable, steps: int = 50) -> list[torch.Tensor]:
        model = self.model()
        self.train(model, make_opt(model.parameters()), steps)
        return [p.detach().clone() for p in model.parameters()]


@pytest.fixture
def problem() -> Problem:
    return Problem()


def assert_all_close(a: list[torch.Tensor], b: list[torch.Tensor], **kw) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, **kw)


@pytest.fixture
def all_close():
    return assert_all_close
