"""`evaluate`: the reward of update rules, as in the paper — train the child network with each rule over a grid of
learning rates and keep the best validation accuracy. Test accuracy is recorded, never used to select."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import torch

from optsearch.dsl import Rule, parse
from optsearch.optim.zoo import zoo
from optsearch.tasks.models import ConvNet
from optsearch.tasks.population import RuleRun, curve_steps, train_sequential, train_stacked
from optsearch.tasks.registry import MLP, fast_bf16, get_task, load_splits

PAPER_LRS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The paper's learning-rate grid."""

Status = Literal["ok", "diverged", "invalid"]


@dataclass
class LrResult:
    """One learning rate's run. A diverged run scores 0 accuracy and has no loss."""

    lr: float
    val_acc: float
    test_acc: float
    loss: float | None  # mean training loss over the last 10% of the steps
    diverged: bool


@dataclass
class CurvePoint:
    step: int
    val_acc: float


@dataclass
class Evaluation:
    """A rule's reward on a task and how it was reached.

    reward: the best final validation accuracy over the learning-rate grid (0 when diverged or invalid).
    status: ok (some learning rate trained), diverged (every one went non-finite), invalid (the rule could not
    run; `reason` says why). `curve` is the validation accuracy of the best learning rate at a few steps.
    `wall_time` is this rule's share of the training time in seconds.
    """

    rule: str
    task: str
    reward: float
    status: Status
    reason: str | None = None
    per_lr: list[LrResult] = field(default_factory=list)
    best_lr: float | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    steps: int = 0
    batch_size: int = 0
    seed: int = 0
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        d = dict(d)
        d["per_lr"] = [LrResult(**p) for p in d.get("per_lr", [])]
        d["curve"] = [CurvePoint(**c) for c in d.get("curve", [])]
        return cls(**d)


@overload
def evaluate(rules: str | Rule, task: str = ..., lrs: Sequence[float] | None = ..., steps: int | None = ...,
             batch_size: int | None = ..., seed: int = ..., device: str | torch.device = ...,
             data_dir: str | Path | None = ..., precision: str = ...,
             progress: Callable[[int, int], None] | None = ...) -> Evaluation: ...
@overload
def evaluate(rules: Sequence[str | Rule], task: str = ..., lrs: Sequence[float] | None = ...,
             steps: int | None = ..., batch_size: int | None = ..., seed: int = ...,
             device: str | torch.device = ..., data_dir: str | Path | None = ...,
             precision: str = ..., progress: Callable[[int, int], None] | None = ...) -> list[Evaluation]: ...


def evaluate(rules: str | Rule | Sequence[str | Rule], task: str = "mnist1d", lrs: Sequence[float] | None = None,
             steps: int | None = None, batch_size: int | None = None, seed: int = 0,
             device: str | torch.device = "cpu", data_dir: str | Path | None = None,
             precision: str = "auto", progress: Callable[[int, int], None] | None = None,
             ) -> Evaluation | list[Evaluation]:
    """Train `task`'s child network with each rule at each learning rate; one Evaluation per rule.

    `rules`: a rule (Rule, infix text or zoo name such as "adam") or a list of them. All (rule, lr) members of
    one call train together on the same minibatches; equal rules are trained once. `lrs` defaults to the paper's
    grid, `steps` and `batch_size` to the task's budget; every rule gets total_steps = steps. The same rules,
    task, budget and seed give the same rewards however the rules are split into calls. A rule that cannot be
    parsed or fails while training comes back `invalid`; it never stops the others.

    `precision`: "auto" runs the child's forward and backward under bfloat16 autocast where the hardware has
    native bf16 (2× faster for the stacked MLP, 2-3× for the ConvNet on these CPUs; rewards move within seed
    noise), "bf16" or "fp32" force one. Weights, optimizer state and the update are always float32.
    `progress(done, total)` is called as member-steps complete.
    """
    single = isinstance(rules, str | Rule)
    items = [rules] if single else list(rules)
    spec = get_task(task)
    lrs = _check_lrs(PAPER_LRS if lrs is None else lrs)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    bf16 = fast_bf16(device) if precision == "auto" else precision == "bf16"
    steps = _check_positive("steps", spec.steps if steps is None else steps)
    batch_size = _check_positive("batch_size", spec.batch_size if batch_size is None else batch_size)
    data = load_splits(task, None if data_dir is None else Path(data_dir)).to(device)
    if batch_size > len(data.y_train):
        raise ValueError(f"batch_size={batch_size} exceeds the {len(data.y_train)} training examples of {task}")

    runs: dict[Rule, RuleRun] = {}
    evaluations: list[Evaluation | Rule] = []
    for item in items:
        try:
            rule = _resolve(item)
        except Exception as error:  # any bad input is one invalid evaluation
            evaluations.append(Evaluation(str(item), task, 0.0, "invalid", f"{type(error).__name__}: {error}",
                                          steps=steps, batch_size=batch_size, seed=seed))
            continue
        runs.setdefault(rule, RuleRun(rule, lrs))
        evaluations.append(rule)
    if runs:
        advance = None
        if progress is not None:
            total, done = steps * sum(len(run.lrs) for run in runs.values()), 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                progress(done, total)

        if isinstance(spec.model, MLP):
            train_stacked(spec.model.sizes, data, list(runs.values()), steps, batch_size, seed, bf16, advance)
        else:
            model = spec.model
            build = partial(ConvNet, model.mean, model.std, model.image_size)
            train_sequential(build, data, list(runs.values()), steps, batch_size, seed, bf16, advance)
    out = [e if isinstance(e, Evaluation) else _summarize(runs[e], task, steps, batch_size, seed)
           for e in evaluations]
    return out[0] if single else out


def _resolve(item: str | Rule) -> Rule:
    """A Rule from a Rule, a zoo name or infix text."""
    if isinstance(item, str) and item in zoo:
        return zoo[item].rule
    if not isinstance(item, str | Rule):
        raise TypeError(f"a rule is a Rule, rule text or zoo name, got {type(item).__name__}")
    return parse(item)


def _summarize(run: RuleRun, task: str, steps: int, batch_size: int, seed: int) -> Evaluation:
    ev = Evaluation(str(run.rule), task, 0.0, "invalid", run.error, steps=steps, batch_size=batch_size, seed=seed,
                    wall_time=run.seconds)
    if run.error is not None:
        return ev
    ev.per_lr = [LrResult(m.lr, m.val_acc, m.test_acc, m.loss, m.diverged_at is not None) for m in run.members]
    trained = [m for m in run.members if m.diverged_at is None]
    if not trained:
        ev.status = "diverged"
        ev.reason = f"every learning rate diverged (by step {max(m.diverged_at for m in run.members)})"
        return ev
    best = max(trained, key=lambda m: m.val_acc)  # the first listed among ties
    ev.status, ev.reward, ev.best_lr = "ok", best.val_acc, best.lr
    ev.curve = [CurvePoint(s, a) for s, a in zip(curve_steps(steps), best.curve, strict=True)]
    return ev


PRECISIONS = ("auto", "bf16", "fp32")


def _check_lrs(lrs: Sequence[float]) -> tuple[float, ...]:
    lrs = tuple(lrs)
    if not lrs or not all(isinstance(lr, int | float) and math.isfinite(lr) and lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty list of positive numbers, got {list(lrs)!r}")
    return tuple(float(lr) for lr in lrs)


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
