"""One training run of a transfer task: a model, an optimizer at one learning rate, one seed; metrics per epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optsearch.tasks.data import Splits
from optsearch.tasks.models import seeded
from optsearch.transfer.tasks import TransferTask

OptimizerFactory = Callable[[list[nn.Parameter], float, int], torch.optim.Optimizer]  # (params, lr, total_steps)


@dataclass
class Epoch:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's minibatches
    val: float  # the task's metric on the validation split
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


def train(task: TransferTask, splits: Splits, name: str, make_optimizer: OptimizerFactory, lr: float, seed: int,
          budget: Budget) -> Run:
    """Train a fresh model; the seed fixes the initial weights and the minibatch order, the same for every optimizer."""
    start = time.perf_counter()
    model = seeded(task.model, seed)
    if task.image:
        model = model.to(memory_format=torch.channels_last)
    steps = budget.steps(len(splits.y_train))
    optimizer = make_optimizer(list(model.parameters()), lr, budget.epochs * steps)
    order = torch.Generator().manual_seed(seed)
    run = Run(name, lr, seed)
    for epoch in range(1, budget.epochs + 1):
        model.train()
        perm = torch.randperm(len(splits.y_train), generator=order)[: steps * budget.batch_size].view(steps, -1)
        total = 0.0
        for idx in perm:
            x, y = splits.x_train[idx], splits.y_train[idx]
            loss = F.cross_entropy(_logits(model, x, task, budget.bf16), y.flatten())
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
        val = evaluate(model, splits.x_val[:n], splits.y_val[:n], task, budget)
        test = evaluate(model, splits.x_test[:n], splits.y_test[:n], task, budget)
        run.epochs.append(Epoch(epoch, total / steps, val, test))
    run.seconds = time.perf_counter() - start
    return run


def _logits(model: nn.Module, x: Tensor, task: TransferTask, bf16: bool) -> Tensor:
    """Float32 logits as rows (one per target: per image, or per position of a sequence)."""
    if task.image:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        return model(x).float().flatten(0, -2)


@torch.no_grad()
def evaluate(model: nn.Module, xs: Tensor, ys: Tensor, task: TransferTask, budget: Budget) -> float:
    """Accuracy, or perplexity = exp(mean cross-entropy per target), over the examples in minibatches."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(ys), budget.batch_size):
        logits = _logits(model, xs[start: start + budget.batch_size], task, budget.bf16)
        y = ys[start: start + budget.batch_size]
        loss_sum += F.cross_entropy(logits, y.flatten(), reduction="sum").item()
        correct += (logits.argmax(-1) == y.flatten()).sum().item()
        count += y.numel()
    if task.metric == "perplexity":
        return math.exp(min(loss_sum / count, 700.0))  # capped below float overflow: a huge value, not an error
    return correct / count
