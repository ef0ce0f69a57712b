"""Training a population of (rule, learning-rate) members on one child task, all on the same minibatches.

Every member starts from the same weights and sees the same minibatch order (both drawn from the seed), and a
rule's noise comes from a generator seeded by the seed and the rule's text. So a member's result depends only on
(seed, rule, its learning rates, budget), never on which other rules share the call.

Two trainers share the update code (`optsearch.optim.functional`) and the helpers here (`RuleRun`, `Halving`,
`minibatches`, `curve_steps`, `stable_seed`, `rule_generator`): `train_stacked` runs every member of an MLP task
as one stacked model (tiny MLPs are overhead-bound, so one batched step beats many small ones), and
`tasks.sequential.train_sequential` runs the members of any other model one after another. Both fill `LrResult`s.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from optsearch.dsl import Rule
from optsearch.dsl.vocab import WEIGHT_SCALES
from optsearch.optim.functional import compute_update, init_state
from optsearch.tasks.data import Splits
from optsearch.tasks.models import StackedMLP
from optsearch.tasks.precision import autocast
from optsearch.tasks.results import LrResult

CURVE_POINTS = 5
"""The validation score is recorded at this many evenly spaced steps (the last one is the end of training)."""
LOSS_TAIL = 0.1
"""A member's final loss is its mean minibatch loss over this last fraction of the steps."""
EVAL_CHUNK_ELEMENTS = 1 << 20
"""The stacked model scores a split in chunks of examples whose widest activation has about this many elements
(4 MiB in fp32). A whole split at once allocates activations of hundreds of MB whose page faults doubled the
time: mnist1d_large, 48 members, one torch thread, 8000 examples: 0.93 s at once, 0.47 s in chunks of 256."""


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
                  halving: Halving | None = None, checkpoint_val: int | None = None) -> None:
    """Train all members of `runs` as one StackedMLP of layer `sizes`; fills each run's `results` or `error`.

    Each run's members are a contiguous block of rows, updated by one `compute_update` call on that block (the
    Python loop is over rules, not members). `bf16` runs the forward and backward under bfloat16 autocast.
    `advance(n)` is told of every n member-steps done (for a progress bar).
    A member whose loss or weights go non-finite is frozen: its row is
    reset to the initial weights, its optimizer state zeroed and its loss masked out, so it poisons nothing.
    With `halving`, members it stops leave the stacked model (its rows, gradients, state and learning rates are
    compacted), so the cost falls with them; training ends when no member is left. A kept member's result is
    bit for bit its result at full fidelity, stochastic rules included (see `_Shadow`). Intermediate checkpoints
    score the fixed validation subset of `checkpoint_val` examples (None: the full split), the last the full split.
    """
    start_time = time.perf_counter()
    device = data.x_train.device
    pop = _Population(sizes, runs, seed, device)
    k = pop.k
    stopped_at: list[int | None] = [None] * k
    test_acc = [0.0] * k
    checkpoints = curve_steps(steps)
    curves: list[list[float]] = [[] for _ in range(k)]
    tail = max(1, math.ceil(LOSS_TAIL * steps))
    checkpoint_split = data.val_subset(checkpoint_val)

    for step, index in enumerate(minibatches(len(data.y_train), batch_size, steps, seed, device), 1):
        if not pop.rows:
            break
        n = len(pop.rows)
        pop.step(data.x_train[index], data.y_train[index], bf16, step)
        with torch.no_grad():
            pop.update(step, steps)
            if step > steps - tail:
                pop.loss_sum += pop.losses
            if advance is not None:
                advance(n)
            if step in checkpoints:
                pop.freeze(pop.alive & ~torch.isfinite(pop.model.params).all(1), step)
                x_val, y_val = (data.x_val, data.y_val) if step == steps else checkpoint_split
                accuracy = (pop.accuracy(x_val, y_val) * pop.alive).tolist()
                for i, a in enumerate(accuracy):
                    curves[pop.rows[i]].append(a)
                if halving is not None and step in halving.floors and step < steps:
                    keep = _halve(halving, step, runs, pop.blocks, pop.alive, accuracy)
                    if not all(keep):
                        tests = pop.accuracy(data.x_test, data.y_test).tolist()
                        for i, kept in enumerate(keep):
                            if not kept and pop.alive[i]:
                                stopped_at[pop.rows[i]], test_acc[pop.rows[i]] = step, tests[i]
                        pop.compact(keep)

    with torch.no_grad():
        for i, a in enumerate((pop.accuracy(data.x_test, data.y_test) * pop.alive).tolist()):
            test_acc[pop.rows[i]] = a
    final_loss = dict(zip(pop.rows, (pop.loss_sum / tail).tolist(), strict=True))
    diverged_at = pop.diverged_at
    elapsed = time.perf_counter() - start_time
    start = 0
    for run in runs:
        members = range(start, start + len(run.lrs))
        start = members.stop
        run.seconds = elapsed * len(run.lrs) / k
        if run.error is not None:
            continue
        run.results = [LrResult(run.lrs[i - members.start], curves[i][-1], test_acc[i],
                                final_loss.get(i) if stopped_at[i] is None and diverged_at[i] is None else None,
                                diverged_at[i],
                                curves[i] + [0.0] * (len(checkpoints) - len(curves[i])) * (diverged_at[i] is not None),
                                stopped_at[i])
                       for i in members]


@dataclass
class _Shadow:
    """The full-size block of a stochastic rule some of whose members have left the stacked model.

    Its noise (dropout masks, `eps`) is drawn for its whole block, so the draws depend on the block's shape. To
    keep the kept members' draws those of full fidelity, its update runs on a block of the full size: the kept
    rows' gradients (and weights, if the rule reads them) are copied to their places `index`, and only the kept
    rows' Δ is applied. The rows that left keep their last gradient and weights (any values would do:
    every operation of an update is elementwise, so a kept row's Δ is bit for bit full fidelity's; a zero
    gradient would make sqrt(v) hit CPUs' slow paths for 0 and, as v decays, for subnormals). The rule's
    optimizer state stays full size. The forward and backward still run for the kept rows only.
    """

    index: Tensor  # the kept rows' positions in the full block, in row order
    grad: Tensor  # (full block, P): the gradient the update reads
    weights: Tensor  # (full block, P): the weights the update reads (the kept rows refreshed if the rule reads w)

    def compact(self, local: Tensor) -> None:
        self.index = self.index[local]


class _Population:
    """The members of one `train_stacked` call as the rows of one StackedMLP, with what goes with each row.

    `rows[i]` is the member (its index over all runs' learning rates) of row i; each run owns the contiguous
    rows `blocks[r]` and the optimizer state `states[r]` (shaped like its block, or its full block once it has
    a `_Shadow`). `alive`, `lr_column`, `losses` and `loss_sum` are per row; `diverged_at` is per member.
    """

    def __init__(self, sizes: Sequence[int], runs: Sequence[RuleRun], seed: int, device: torch.device) -> None:
        self.runs = runs
        self.device = device
        lrs = [lr for run in runs for lr in run.lrs]
        self.k = k = len(lrs)
        self.model = StackedMLP(sizes, k, torch.Generator().manual_seed(stable_seed("init", seed)), device)
        self.lr_column = torch.tensor(lrs, dtype=self.model.params.dtype, device=device).view(k, 1)
        self.owner = [r for r, run in enumerate(runs) for _ in run.lrs]
        self.rows = list(range(k))
        self.blocks = _blocks(self.owner, self.rows, len(runs))
        self.states = [init_state(run.rule, self.model.params[block]) for run, block in zip(runs, self.blocks,
                                                                                               strict=True)]
        self.generators = [rule_generator(run.rule, device, seed) for run in runs]
        self.shadows: list[_Shadow | None] = [None] * len(runs)
        self.alive = torch.ones(k, dtype=torch.bool, device=device)
        self.frozen_in = [False] * len(runs)  # whether a run has frozen members (they need masking in its update)
        self.diverged_at: list[int | None] = [None] * k
        self.losses = torch.zeros(k, device=device)
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)

    def step(self, x: Tensor, y: Tensor, bf16: bool, step: int) -> None:
        """Forward and backward of step `step` on minibatch (x, y): fills `params.grad` and `losses`; a row whose
        loss is not finite is frozen (and its loss masked)."""
        n, model = len(self.rows), self.model
        with autocast(self.device, bf16):
            logits = model(x)
        losses = F.cross_entropy(logits.float().flatten(0, 1), y.repeat(n), reduction="none").view(n, -1).mean(1)
        bad = self.alive & ~torch.isfinite(losses.detach())
        losses = torch.where(self.alive & ~bad, losses, torch.zeros_like(losses))
        model.params.grad = None
        losses.sum().backward()
        self.losses = losses.detach()
        if bad.any():
            with torch.no_grad():
                self.freeze(bad, step)

    def update(self, step: int, steps: int) -> None:
        """Update step `step` (of `steps`) of every run's block; a rule that raises freezes its members."""
        for r, (run, block) in enumerate(zip(self.runs, self.blocks, strict=True)):
            if run.error is not None or block.start == block.stop:
                continue
            try:
                self._update_block(r, step, steps)
            except Exception as error:  # a rule must never crash the population
                run.error = _describe(error)
                mask = torch.zeros(len(self.rows), dtype=torch.bool, device=self.device)
                mask[block] = True
                self.freeze(mask & self.alive, None)

    def _update_block(self, r: int, step: int, steps: int) -> None:
        params, block, shadow, rule = self.model.params, self.blocks[r], self.shadows[r], self.runs[r].rule
        grad, weights = params.grad[block], params[block]
        if shadow is not None:
            grad = shadow.grad.index_copy_(0, shadow.index, grad)
            if not rule.operands.isdisjoint(WEIGHT_SCALES):
                shadow.weights.index_copy_(0, shadow.index, weights)
            weights = shadow.weights
        delta = compute_update(rule, grad, weights, self.states[r], step, steps, self.generators[r])
        if shadow is not None:
            delta = delta.index_select(0, shadow.index)
        if self.frozen_in[r]:
            updated = params[block] - self.lr_column[block] * delta
            params[block] = torch.where(self.alive[block, None], updated, params[block])
        else:
            params[block].addcmul_(self.lr_column[block], delta, value=-1.0)

    def freeze(self, members: Tensor, step: int | None) -> None:
        """Stop rows `members` (bool mask): restore their weights, zero their gradient and state, mask their loss."""
        params = self.model.params
        for i in members.nonzero().flatten().tolist():
            self.alive[i] = False
            self.diverged_at[self.rows[i]] = step
            params[i] = self.model.init
            params.grad[i] = 0.0
            r = self.owner[self.rows[i]]
            self.frozen_in[r] = True
            shadow, local = self.shadows[r], i - self.blocks[r].start
            if shadow is not None:
                local = int(shadow.index[local])
            for buffer in self.states[r].values():
                buffer[local].zero_()

    def compact(self, keep: Sequence[bool]) -> None:
        """Drop the rows not kept from the stacked model, its learning rates and losses; a stochastic rule that
        loses rows gets (or keeps) a `_Shadow`, any other run's state loses them too."""
        params, grads = self.model.params.detach(), self.model.params.grad
        index = torch.tensor([i for i, kept in enumerate(keep) if kept], dtype=torch.long, device=self.device)
        for r, block in enumerate(self.blocks):
            local = torch.tensor([i - block.start for i in range(block.start, block.stop) if keep[i]],
                                 dtype=torch.long, device=self.device)
            if len(local) == block.stop - block.start:
                continue
            if self.shadows[r] is not None:
                self.shadows[r].compact(local)
            elif self.runs[r].rule.stochastic and len(local):
                self.shadows[r] = _Shadow(local, grads[block].clone(), params[block].clone())
            else:
                self.states[r] = {name: buffer[local] for name, buffer in self.states[r].items()}
        self.model.params = params[index].requires_grad_()
        self.alive, self.lr_column = self.alive[index], self.lr_column[index]
        self.losses, self.loss_sum = self.losses[index], self.loss_sum[index]
        self.rows = [m for m, kept in zip(self.rows, keep, strict=True) if kept]
        self.blocks = _blocks(self.owner, self.rows, len(self.runs))

    def accuracy(self, x: Tensor, y: Tensor) -> Tensor:
        """Each row's accuracy on (x, y)."""
        return _stacked_accuracy(self.model, x, y)


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

    Stochastic rules are halved like the others: their noise stays full fidelity's through their `_Shadow`.
    """
    keep = [False] * len(accuracy)
    for run, block in zip(runs, blocks, strict=True):
        live = [i for i in range(block.start, block.stop) if alive[i]]
        kept = halving.keep(step, [accuracy[i] for i in live]) if run.error is None else []
        for i, kept_i in zip(live, kept, strict=True):
            keep[i] = kept_i
    return keep


def _stacked_accuracy(model: StackedMLP, x: Tensor, y: Tensor) -> Tensor:
    """Each member's accuracy on (x, y), over chunks of examples (a chunk's logits are bit for bit the whole
    split's: each is a row of the same matmuls)."""
    chunk = max(1, EVAL_CHUNK_ELEMENTS // max(1, model.params.shape[0] * max(model.sizes)))  # 0 rows once all left
    correct = sum((model(x[i:i + chunk]).argmax(-1) == y[i:i + chunk]).sum(1) for i in range(0, len(y), chunk))
    return correct.double() / len(y)

