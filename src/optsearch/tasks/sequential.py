"""Training the (rule, learning-rate) members of a non-MLP task one after another, each on its own model.

ConvNets, LSTMs and transformers are compute-bound at the task sizes: training members as one stacked model lost
to training them one after another (a vmap population of 8 ConvNets 0.3×, a stacked LSTM cell 0.5×, a grouped
convolution 0.6×). A member's result depends only on (seed, rule, its learning rate, budget), as in
`train_stacked`: its initial weights, minibatches and noise are drawn from generators of its own.

With halving, a rule's learning rates are trained to each halving step in turn, each member's model and optimizer
state kept in memory between steps (they are small); once all of them reach the step they are compared by the
same `Halving.keep` as the stacked trainer's, and only the kept ones go on. A kept member continues exactly where
it stopped, so its result is bit for bit its result at full fidelity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from optsearch.dsl import Rule
from optsearch.optim.functional import compute_updates, init_state
from optsearch.tasks.data import Splits
from optsearch.tasks.metrics import Metric, measure
from optsearch.tasks.models import seeded
from optsearch.tasks.population import (
    LOSS_TAIL,
    Halving,
    RuleRun,
    _describe,
    curve_steps,
    minibatches,
    rule_generator,
    stable_seed,
)
from optsearch.tasks.precision import autocast, images_last, model_last
from optsearch.tasks.results import LrResult


def train_sequential(build: Callable[[], nn.Module], metric: Metric, data: Splits, runs: Sequence[RuleRun],
                     steps: int, batch_size: int, seed: int, bf16: bool = False,
                     advance: Callable[[int], None] | None = None, halving: Halving | None = None,
                     checkpoint_val: int | None = None) -> None:
    """Train each member of `runs` on its own copy of `build()`, rule after rule; fills `results` or `error`.

    The loss is the one `metric` implies; scores are `metric`'s rewards. `bf16` runs forward and backward under
    bfloat16 autocast; image batches go channels-last. Weights, optimizer state and loss stay float32.
    Intermediate checkpoints score the fixed validation subset of `checkpoint_val` examples (None: the full
    split), the last one the full split. With `halving`, a rule's learning rates stop at its steps as in
    `train_stacked` (see the module docstring).
    """
    checkpoint_split = data.val_subset(checkpoint_val)
    rungs = sorted(step for step in (halving.floors if halving is not None else ()) if step < steps)
    for run in runs:
        start_time = time.perf_counter()
        try:
            run.results = _train_rule(build, metric, data, checkpoint_split, run, steps, batch_size, seed, bf16,
                                      advance, halving, rungs)
        except Exception as error:  # a rule must never crash the population
            run.error, run.results = _describe(error), []
        run.seconds = time.perf_counter() - start_time


def _train_rule(build: Callable[[], nn.Module], metric: Metric, data: Splits, checkpoint_split: tuple[Tensor, Tensor],
                run: RuleRun, steps: int, batch_size: int, seed: int, bf16: bool,
                advance: Callable[[int], None] | None, halving: Halving | None, rungs: list[int]) -> list[LrResult]:
    members = [_Member(build, metric, data, checkpoint_split, run.rule, lr, steps, batch_size, seed, bf16, advance)
               for lr in run.lrs]
    for rung in rungs:
        live = [m for m in members if m.live]
        for member in live:
            member.train_to(rung)
        live = [m for m in live if m.live]
        for member, kept in zip(live, halving.keep(rung, [m.result.curve[-1] for m in live]), strict=True):
            if not kept:
                member.result.stopped_at = rung
                member.finish()
    for member in members:
        if member.live:
            member.train_to(steps)
        if member.live:  # not diverged
            member.finish()
    return [m.result for m in members]


class _Member:
    """One (rule, lr) member mid-training: its model, optimizer state, minibatch stream and partial result."""

    def __init__(self, build: Callable[[], nn.Module], metric: Metric, data: Splits,
                 checkpoint_split: tuple[Tensor, Tensor], rule: Rule, lr: float, steps: int, batch_size: int,
                 seed: int, bf16: bool, advance: Callable[[int], None] | None) -> None:
        self.device = device = data.x_train.device
        self.metric, self.data, self.checkpoint_split, self.rule, self.lr = metric, data, checkpoint_split, rule, lr
        self.steps, self.bf16, self.advance = steps, bf16, advance
        self.model: nn.Module | None = model_last(seeded(build, stable_seed("init", seed)).to(device))
        self.params = list(self.model.parameters())
        self.states = [init_state(rule, p) for p in self.params]
        self.generator = rule_generator(rule, device, seed, lr)
        self.batches: Iterator[tuple[int, Tensor]] = enumerate(
            minibatches(len(data.y_train), batch_size, steps, seed, device), 1)
        self.checkpoints = curve_steps(steps)
        self.tail = max(1, math.ceil(LOSS_TAIL * steps))
        self.result, self.loss_sum = LrResult(lr), 0.0

    @property
    def live(self) -> bool:
        return self.model is not None

    def train_to(self, stop: int) -> None:
        """Train through step `stop` (a checkpoint), or until the member diverges (then it is finished)."""
        model, params, metric, data = self.model, self.params, self.metric, self.data
        for step, index in self.batches:
            with autocast(self.device, self.bf16):
                output = model(images_last(data.x_train[index]))
            loss = metric.loss(output, data.y_train[index])
            if not torch.isfinite(loss):
                return self._diverge(step)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                deltas = compute_updates(self.rule, grads, params, self.states, [step] * len(params), self.steps,
                                         self.generator)
                torch._foreach_add_(params, deltas, alpha=-self.lr)
            if step > self.steps - self.tail:
                self.loss_sum += loss.item()
            if self.advance is not None:
                self.advance(1)
            if step in self.checkpoints:
                if not all(torch.isfinite(t).all() for t in (*params, *model.buffers())):
                    return self._diverge(step)
                x, y = (data.x_val, data.y_val) if step == self.steps else self.checkpoint_split
                self.result.curve.append(metric.reward(measure(model, x, y, metric, self.bf16)))
            if step == stop:
                return None
        return None

    def _diverge(self, step: int) -> None:
        self.result.diverged_at = step
        if self.advance is not None:
            self.advance(self.steps - step + 1)
        self.result.curve += [0.0] * (len(self.checkpoints) - len(self.result.curve))
        self.model = None

    def finish(self) -> None:
        """Score the member (trained to the end, or stopped by halving) and free its model."""
        result = self.result
        result.val_acc = result.curve[-1]
        result.loss = None if result.stopped_at is not None else self.loss_sum / self.tail
        result.test_acc = self.metric.reward(measure(self.model, self.data.x_test, self.data.y_test, self.metric,
                                                     self.bf16))
        self.model = None
