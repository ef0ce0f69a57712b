"""Training a population of (rule, learning-rate) members on one child task, all on the same minibatches.

Every member starts from the same weights and sees the same minibatch order (both drawn from the seed), and a
rule's noise comes from a generator seeded by the seed and the rule's text. So a member's result depends only on
(seed, rule, its learning rates, budget), never on which other rules share the call.

Two trainers share the update code (`optsearch.optim.functional`): `train_stacked` runs every member of an MLP
task as one stacked model (tiny MLPs are overhead-bound, so one batched step beats many small ones), and
`train_sequential` runs the members of any other model one after another (ConvNets are compute-bound: a vmap
population of 8 ran at 0.3× the speed of sequential training). Both fill `LrResult`s; the sequential trainer
scores with the task's metric through `tasks.metrics.measure`, as the benchmark does.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optsearch.dsl import Rule
from optsearch.optim.functional import compute_update, compute_updates, init_state
from optsearch.tasks.data import Splits
from optsearch.tasks.metrics import Metric, measure
from optsearch.tasks.models import StackedMLP, seeded
from optsearch.tasks.precision import autocast, images_last, model_last
from optsearch.tasks.results import LrResult

CURVE_POINTS = 5
"""The validation score is recorded at this many evenly spaced steps (the last one is the end of training)."""
LOSS_TAIL = 0.1
"""A member's final loss is its mean minibatch loss over this last fraction of the steps."""


@dataclass
class RuleRun:
    """One rule and the learning rates to try it at; the trainer fills `results`, or `error` if the rule fails."""

    rule: Rule
    lrs: Sequence[float]
    results: list[LrResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0  # this rule's share of the training time


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from `parts` that is the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def curve_steps(steps: int) -> list[int]:
    return sorted({max(1, round(steps * i / CURVE_POINTS)) for i in range(1, CURVE_POINTS + 1)})


def minibatches(n: int, batch_size: int, steps: int, seed: int, device: str | torch.device) -> Iterator[Tensor]:
    """Indices of `steps` minibatches: shuffled epochs from `seed`, the last partial batch of each dropped."""
    generator = torch.Generator().manual_seed(stable_seed("batches", seed))
    per_epoch = n // batch_size
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=generator).to(device)
        start = step % per_epoch * batch_size
        yield order[start:start + batch_size]


def rule_generator(rule: Rule, device: str | torch.device, *key: object) -> torch.Generator | None:
    """The noise generator of a stochastic rule, seeded by `key` and the rule's text (None if it draws no noise)."""
    if not rule.stochastic:
        return None
    return torch.Generator(device=device).manual_seed(stable_seed("rule", str(rule), *key))


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class Halving:
    """Successive halving inside one evaluation: at each step of `floors`, a rule whose best live member scores
    below that floor stops (all of it), and a rule that goes on keeps only its live learning rates that can still
    win: the best ⌈fraction·n⌉ (`fractions` per step) and any within `LR_MARGIN` of its best. Decisions read
    only the rule's own scores (and floors fixed per settings), so results stay independent of how rules are
    grouped into calls.
    """

    floors: dict[int, float]
    fractions: dict[int, float]

    def keep(self, step: int, scores: Sequence[float]) -> list[bool]:
        """Which of one rule's live members (their validation `scores` at `step`) train on."""
        if step not in self.floors or not scores:
            return [True] * len(scores)
        best = max(scores)
        if best < self.floors[step]:
            return [False] * len(scores)
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[:math.ceil(self.fractions[step] * len(scores))]
        return [i in ranked or a >= best - LR_MARGIN for i, a in enumerate(scores)]


LR_MARGIN = 0.02
"""At a halving step a rule also keeps every live learning rate scoring within this much of its best."""


def train_stacked(sizes: Sequence[int], data: Splits, runs: Sequence[RuleRun], steps: int, batch_size: int,
                  seed: int, bf16: bool = False, advance: Callable[[int], None] | None = None,
                  halving: Halving | None = None) -> None:
    """Train all members of `runs` as one StackedMLP of layer `sizes`; fills each run's `results` or `error`.

    Each run's members are a contiguous block of rows, updated by one `compute_update` call on that block (the
    Python loop is over rules, not members). `bf16` runs the forward and backward under bfloat16 autocast.
    `advance(n)` is told of every n member-steps done (for a progress bar).
    A member whose loss or weights go non-finite is frozen: its row is
    reset to the initial weights, its optimizer state zeroed and its loss masked out, so it poisons nothing.
    With `halving`, members it stops leave the stacked model (its rows, gradients, state and learning rates are
    compacted), so the cost falls with them; training ends when no member is left.
    """
    start_time = time.perf_counter()
    device = data.x_train.device
    lrs = [lr for run in runs for lr in run.lrs]
    k = len(lrs)
    model = StackedMLP(sizes, k, torch.Generator().manual_seed(stable_seed("init", seed)), device)
    lr_column = torch.tensor(lrs, dtype=model.params.dtype, device=device).view(k, 1)
    owner = [r for r, run in enumerate(runs) for _ in run.lrs]
    rows = list(range(k))  # the member of each row of the stacked model
    blocks = _blocks(owner, rows, len(runs))
    states = [init_state(run.rule, model.params[block]) for run, block in zip(runs, blocks, strict=True)]
    generators = [rule_generator(run.rule, device, seed) for run in runs]
    alive = torch.ones(k, dtype=torch.bool, device=device)
    diverged_at: list[int | None] = [None] * k
    stopped_at: list[int | None] = [None] * k
    test_acc = [0.0] * k
    frozen_in = [False] * len(runs)  # whether a run has frozen members (they need masking in its update)
    checkpoints = curve_steps(steps)
    curves: list[list[float]] = [[] for _ in range(k)]
    tail = max(1, math.ceil(LOSS_TAIL * steps))
    loss_sum = torch.zeros(k, dtype=torch.float64, device=device)

    def freeze(members: Tensor, step: int | None) -> None:
        """Stop rows `members` (bool mask): restore their weights, zero their gradient and state, mask their loss."""
        for i in members.nonzero().flatten().tolist():
            alive[i] = False
            diverged_at[rows[i]] = step
            model.params[i] = model.init
            model.params.grad[i] = 0.0
            r = owner[rows[i]]
            frozen_in[r] = True
            for buffer in states[r].values():
                buffer[i - blocks[r].start].zero_()

    def compact(keep: list[bool]) -> None:
        """Drop the rows not kept from the stacked model, its learning rates, losses and every run's state."""
        nonlocal rows, blocks, alive, lr_column, loss_sum
        index = torch.tensor([i for i, kept in enumerate(keep) if kept], dtype=torch.long, device=device)
        for r, block in enumerate(blocks):
            local = torch.tensor([i - block.start for i in range(block.start, block.stop) if keep[i]],
                                 dtype=torch.long, device=device)
            states[r] = {name: buffer[local] for name, buffer in states[r].items()}
        model.params = model.params.detach()[index].requires_grad_()
        alive, lr_column, loss_sum = alive[index], lr_column[index], loss_sum[index]
        rows = [m for m, kept in zip(rows, keep, strict=True) if kept]
        blocks = _blocks(owner, rows, len(runs))

    for step, index in enumerate(minibatches(len(data.y_train), batch_size, steps, seed, device), 1):
        if not rows:
            break
        n = len(rows)
        x, y = data.x_train[index], data.y_train[index]
        with autocast(device, bf16):
            logits = model(x)
        losses = F.cross_entropy(logits.float().flatten(0, 1), y.repeat(n), reduction="none").view(n, -1).mean(1)
        bad = alive & ~torch.isfinite(losses.detach())
        losses = torch.where(alive & ~bad, losses, torch.zeros_like(losses))
        model.params.grad = None
        losses.sum().backward()
        with torch.no_grad():
            params = model.params
            if bad.any():
                freeze(bad, step)
            for r, (run, block) in enumerate(zip(runs, blocks, strict=True)):
                if run.error is not None or block.start == block.stop:
                    continue
                try:
                    delta = compute_update(run.rule, params.grad[block], params[block], states[r], step, steps,
                                           generators[r])
                    if frozen_in[r]:
                        updated = params[block] - lr_column[block] * delta
                        params[block] = torch.where(alive[block, None], updated, params[block])
                    else:
                        params[block].addcmul_(lr_column[block], delta, value=-1.0)
                except Exception as error:  # a rule must never crash the population
                    run.error = _describe(error)
                    mask = torch.zeros(n, dtype=torch.bool, device=device)
                    mask[block] = True
                    freeze(mask & alive, None)
            if step > steps - tail:
                loss_sum += losses.detach()
            if advance is not None:
                advance(n)
            if step in checkpoints:
                freeze(alive & ~torch.isfinite(params).all(1), step)
                accuracy = (_stacked_accuracy(model, data.x_val, data.y_val) * alive).tolist()
                for i, a in enumerate(accuracy):
                    curves[rows[i]].append(a)
                if halving is not None and step in halving.floors and step < steps:
                    keep = _halve(halving, step, runs, blocks, alive, accuracy)
                    if not all(keep):
                        stopped = [i for i, kept in enumerate(keep) if not kept]
                        tests = _stacked_accuracy(model, data.x_test, data.y_test).tolist()
                        for i in stopped:
                            if alive[i]:
                                stopped_at[rows[i]], test_acc[rows[i]] = step, tests[i]
                        compact(keep)

    with torch.no_grad():
        for i, a in enumerate((_stacked_accuracy(model, data.x_test, data.y_test) * alive).tolist()):
            test_acc[rows[i]] = a
    final_loss = dict(zip(rows, (loss_sum / tail).tolist(), strict=True))
    elapsed = time.perf_counter() - start_time
    start = 0
    for run in runs:
        members = range(start, start + len(run.lrs))
        start = members.stop
        run.seconds = elapsed * len(run.lrs) / k
        if run.error is not None:
            continue
        run.results = [LrResult(lrs[i], curves[i][-1], test_acc[i], final_loss.get(i) if stopped_at[i] is None
                                and diverged_at[i] is None else None, diverged_at[i],
                                curves[i] + [0.0] * (len(checkpoints) - len(curves[i])) * (diverged_at[i] is not None),
                                stopped_at[i])
                       for i in members]


def _blocks(owner: Sequence[int], rows: Sequence[int], n_runs: int) -> list[slice]:
    """Each run's contiguous block of rows (empty once all its members have left)."""
    blocks, start = [], 0
    for r in range(n_runs):
        stop = start
        while stop < len(rows) and owner[rows[stop]] == r:
            stop += 1
        blocks.append(slice(start, stop))
        start = stop
    return blocks


def _halve(halving: Halving, step: int, runs: Sequence[RuleRun], blocks: Sequence[slice], alive: Tensor,
           accuracy: Sequence[float]) -> list[bool]:
    """Which rows train on after halving step `step`: a rule's frozen (diverged or failed) rows leave too.

    A stochastic rule keeps all its rows or none: its noise is drawn for its whole block, so a smaller block
    would change the draws of the members kept (and their rewards would no longer be full fidelity's).
    """
    keep = [True] * len(accuracy)
    for run, block in zip(runs, blocks, strict=True):
        live = [i for i in range(block.start, block.stop) if alive[i]]
        kept = halving.keep(step, [accuracy[i] for i in live]) if run.error is None else []
        for i in range(block.start, block.stop):
            keep[i] = run.rule.stochastic and any(kept)
        for i, kept_i in zip(live, kept, strict=True):
            keep[i] = keep[i] or kept_i
    return keep


def _stacked_accuracy(model: StackedMLP, x: Tensor, y: Tensor) -> Tensor:
    return (model(x).argmax(-1) == y).sum(1).double() / len(y)


def train_sequential(build: Callable[[], nn.Module], metric: Metric, data: Splits, runs: Sequence[RuleRun],
                     steps: int, batch_size: int, seed: int, bf16: bool = False,
                     advance: Callable[[int], None] | None = None, halving: Halving | None = None) -> None:
    """Train each member of `runs` on its own copy of `build()`, one after another; fills `results` or `error`.

    The loss is the one `metric` implies; scores are `metric`'s rewards. `bf16` runs forward and backward under
    bfloat16 autocast; image batches go channels-last. Weights, optimizer state and loss stay float32.
    With `halving`, a member stops at a halving step where it scores below the floor (members train one after
    another, so learning rates are not compared with each other here).
    """
    for run in runs:
        start_time = time.perf_counter()
        try:
            run.results = [_train_member(build, metric, data, run.rule, lr, steps, batch_size, seed, bf16, advance,
                                         halving) for lr in run.lrs]
        except Exception as error:  # a rule must never crash the population
            run.error, run.results = _describe(error), []
        run.seconds = time.perf_counter() - start_time


def _train_member(build: Callable[[], nn.Module], metric: Metric, data: Splits, rule: Rule, lr: float, steps: int,
                  batch_size: int, seed: int, bf16: bool, advance: Callable[[int], None] | None,
                  halving: Halving | None) -> LrResult:
    device = data.x_train.device
    model = model_last(seeded(build, stable_seed("init", seed)).to(device))
    params = list(model.parameters())
    states = [init_state(rule, p) for p in params]
    generator = rule_generator(rule, device, seed, lr)
    checkpoints = curve_steps(steps)
    tail = max(1, math.ceil(LOSS_TAIL * steps))
    result, loss_sum = LrResult(lr), 0.0
    for step, index in enumerate(minibatches(len(data.y_train), batch_size, steps, seed, device), 1):
        with autocast(device, bf16):
            output = model(images_last(data.x_train[index]))
        loss = metric.loss(output, data.y_train[index])
        if not torch.isfinite(loss):
            result.diverged_at = step
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            deltas = compute_updates(rule, grads, params, states, [step] * len(params), steps, generator)
            torch._foreach_add_(params, deltas, alpha=-lr)
        if step > steps - tail:
            loss_sum += loss.item()
        if advance is not None:
            advance(1)
        if step in checkpoints:
            if not all(torch.isfinite(t).all() for t in (*params, *model.buffers())):
                result.diverged_at = step
                break
            result.curve.append(metric.reward(measure(model, data.x_val, data.y_val, metric, bf16)))
            if halving is not None and step < steps and not halving.keep(step, result.curve[-1:])[0]:
                result.stopped_at = step
                break
    if result.diverged_at is not None:
        if advance is not None:
            advance(steps - result.diverged_at + 1)
        result.curve += [0.0] * (len(checkpoints) - len(result.curve))
        return result
    result.val_acc = result.curve[-1]
    result.loss = None if result.stopped_at is not None else loss_sum / tail
    result.test_acc = metric.reward(measure(model, data.x_test, data.y_test, metric, bf16))
    return result
