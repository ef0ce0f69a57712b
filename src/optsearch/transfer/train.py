"""One benchmark training run: a task's model, an optimizer at one learning rate, one seed; metrics per epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from optsearch.tasks.data import Splits
from optsearch.tasks.metrics import measure
from optsearch.tasks.models import seeded
from optsearch.tasks.precision import autocast, images_last, model_last
from optsearch.tasks.registry import Task

OptimizerFactory = Callable[[list[nn.Parameter], float, int], torch.optim.Optimizer]  # (params, lr, total_steps)


@dataclass
class Epoch:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's minibatches
    val: float  # the task's metric (accuracy, perplexity, mse) on the validation split
    test: float


@dataclass
class Run:
    """One (optimizer, lr, seed). A run whose loss turned non-finite stops there: `diverged`, fewer epochs."""

    optimizer: str
    lr: float
    seed: int
    epochs: list[Epoch] = field(default_factory=list)
    diverged: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Budget:
    """How much training a run gets: `steps_per_epoch` caps an epoch (None: one pass over the training split)."""

    epochs: int
    batch_size: int
    steps_per_epoch: int | None = None
    eval_size: int | None = None  # evaluate on the first n validation/test examples (None: all)
    bf16: bool = False  # bf16 autocast: 2.5-4x faster convnets on CPUs with native bf16

    def steps(self, n_train: int) -> int:
        full = max(1, n_train // self.batch_size)
        return full if self.steps_per_epoch is None else min(full, self.steps_per_epoch)


def train_run(task: Task, splits: Splits, name: str, make_optimizer: OptimizerFactory, lr: float, seed: int,
              budget: Budget) -> Run:
    """Train a fresh model; the seed fixes the initial weights and the minibatch order, the same for every optimizer."""
    start = time.perf_counter()
    model = model_last(seeded(task.model, seed))
    metric = task.scoring
    steps = budget.steps(len(splits.y_train))
    optimizer = make_optimizer(list(model.parameters()), lr, budget.epochs * steps)
    order = torch.Generator().manual_seed(seed)
    device = splits.x_train.device
    run = Run(name, lr, seed)
    for epoch in range(1, budget.epochs + 1):
        model.train()
        perm = torch.randperm(len(splits.y_train), generator=order)[: steps * budget.batch_size].view(steps, -1)
        total = 0.0
        for idx in perm:
            with autocast(device, budget.bf16):
                output = model(images_last(splits.x_train[idx]))
            loss = metric.loss(output, splits.y_train[idx])
            value = loss.item()
            if not math.isfinite(value):
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value
        run.diverged = not (math.isfinite(value) and all(p.isfinite().all() for p in model.parameters()))
        if run.diverged:
            break
        n = budget.eval_size
        val, test = (measure(model, x[:n], y[:n], metric, budget.bf16, budget.batch_size)
                     for x, y in ((splits.x_val, splits.y_val), (splits.x_test, splits.y_test)))
        run.epochs.append(Epoch(epoch, total / steps, val, test))
    run.seconds = time.perf_counter() - start
    return run
