"""What a task measures, how a model is scored on it, and how the score becomes a search reward.

A search maximizes its reward, so every metric maps to a reward in [0, 1], higher is better, 0 for a diverged
run: accuracy is its own reward; perplexity gives exp(-mean cross-entropy) = 1 / perplexity; mean squared
error gives 1 / (1 + mse). Benchmarks report the metric itself (perplexity, lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optsearch.tasks.precision import autocast, images_last


def _cross_entropy(output: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy over rows: one per image, or one per position of a sequence ((N, T, V) logits)."""
    return F.cross_entropy(output.float().flatten(0, -2), y.flatten(), reduction=reduction)


def _squared_error(output: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    return F.mse_loss(output.float().reshape(y.shape), y.float(), reduction=reduction)


@dataclass(frozen=True)
class Metric:
    """A task's metric: the training loss it implies, its direction, and its reward (see the module docstring)."""

    name: str
    lower_is_better: bool
    loss: Callable[..., Tensor]  # (model output, targets, reduction="mean") -> loss
    reward_of: Callable[[float], float]  # metric value -> reward in [0, 1]
    reward_text: str  # what the reward is, for tables

    @property
    def labels(self) -> bool:
        """Whether its targets are class labels (a cross-entropy loss), not values."""
        return self.loss is _cross_entropy

    def reward(self, value: float) -> float:
        reward = self.reward_of(value)
        return reward if math.isfinite(reward) else 0.0


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", False, _cross_entropy, lambda acc: acc, "accuracy"),
    Metric("perplexity", True, _cross_entropy, lambda ppl: 1.0 / ppl, "1/perplexity"),
    Metric("mse", True, _squared_error, lambda mse: 1.0 / (1.0 + mse), "1/(1+mse)"),
)}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; allowed: {', '.join(METRICS)}")
    return METRICS[name]


@torch.no_grad()
def measure(model: nn.Module, x: Tensor, y: Tensor, metric: Metric, bf16: bool, chunk: int = 1000) -> float:
    """The metric of `model` on (x, y), in chunks, in eval mode (the model's mode is restored after).

    The one scoring function of both trainers: accuracy, perplexity = exp(mean cross-entropy per target), or
    the mean squared error.
    """
    training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), chunk):
        xb, yb = x[start:start + chunk], y[start:start + chunk]
        with autocast(xb.device, bf16):
            output = model(images_last(xb))
        if metric.name == "accuracy":
            correct += (output.argmax(-1) == yb).sum().item()
        else:
            loss_sum += metric.loss(output, yb, reduction="sum").item()
    model.train(training)
    count = y.numel()
    if metric.name == "accuracy":
        return correct / count
    if metric.name == "perplexity":
        return math.exp(min(loss_sum / count, 700.0))  # capped below float overflow: a huge value, not an error
    return loss_sum / count
