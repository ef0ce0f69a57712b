"""`evaluate`: the reward of update rules, as in the paper — train the task's network with each rule over a grid of
learning rates and keep the best validation score (accuracy, 1/perplexity, ...: higher is better). The test
score is recorded, never used to select."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import overload

import torch

from optsearch.dsl import Rule
from optsearch.optim.zoo import resolve
from optsearch.tasks.population import RuleRun, curve_steps, train_sequential, train_stacked
from optsearch.tasks.precision import fast_bf16
from optsearch.tasks.registry import Task, get_task, load_splits
from optsearch.tasks.results import CurvePoint, Evaluation, Status
from optsearch.tasks.settings import PAPER_LRS, Settings

Progress = Callable[[int, int], None]


@overload
def evaluate(rules: str | Rule, task: str | Task = ..., lrs: Sequence[float] | None = ..., steps: int | None = ...,
             batch_size: int | None = ..., seed: int = ..., device: str | torch.device = ...,
             data_dir: str | Path | None = ..., precision: str = ...,
             progress: Progress | None = ...) -> Evaluation: ...
@overload
def evaluate(rules: Sequence[str | Rule], task: str | Task = ..., lrs: Sequence[float] | None = ...,
             steps: int | None = ..., batch_size: int | None = ..., seed: int = ...,
             device: str | torch.device = ..., data_dir: str | Path | None = ...,
             precision: str = ..., progress: Progress | None = ...) -> list[Evaluation]: ...


def evaluate(rules: str | Rule | Sequence[str | Rule], task: str | Task = "mnist1d", lrs: Sequence[float] | None = None,
             steps: int | None = None, batch_size: int | None = None, seed: int = 0,
             device: str | torch.device = "cpu", data_dir: str | Path | None = None,
             precision: str = "auto", progress: Progress | None = None,
             ) -> Evaluation | list[Evaluation]:
    """Train `task`'s child network with each rule at each learning rate; one Evaluation per rule.

    `task`: a task name (`optsearch tasks`), a spec "path/to/file.py:make_task" / "package.module:make_task"
    naming a function that returns a Task, or a Task object (registered in this process by its name).
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
    settings = Settings(task, PAPER_LRS if lrs is None else lrs, steps, batch_size, seed, str(device),
                        None if data_dir is None else str(data_dir), precision)
    out = evaluate_settings([rules] if single else list(rules), settings, progress)
    return out[0] if single else out


def evaluate_settings(items: Sequence[str | Rule], settings: Settings,
                      progress: Progress | None = None) -> list[Evaluation]:
    """`evaluate` for validated `settings`: one Evaluation per item, in order (what workers call)."""
    settings.check_device()
    s = settings.resolved()
    spec = get_task(s.task)
    bf16 = fast_bf16(s.device) if s.precision == "auto" else s.precision == "bf16"
    data = load_splits(s.task, s.data_path).to(s.device)
    if s.batch_size > len(data.y_train):
        raise ValueError(f"batch_size={s.batch_size} exceeds the {len(data.y_train)} training examples of {s.task}")

    runs: dict[Rule, RuleRun] = {}
    evaluations: list[Evaluation | Rule] = []
    for item in items:
        try:
            rule = resolve(item)
        except Exception as error:  # any bad input is one invalid evaluation
            evaluations.append(Evaluation(str(item), s.task, 0.0, Status.INVALID, f"{type(error).__name__}: {error}",
                                          steps=s.steps, batch_size=s.batch_size, seed=s.seed))
            continue
        runs.setdefault(rule, RuleRun(rule, s.lrs))
        evaluations.append(rule)
    if runs:
        advance = None
        if progress is not None:
            total, done = s.steps * sum(len(run.lrs) for run in runs.values()), 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                progress(done, total)

        if spec.stacked:
            train_stacked(spec.model.sizes, data, list(runs.values()), s.steps, s.batch_size, s.seed, bf16, advance)
        else:
            train_sequential(spec.model, spec.scoring, data, list(runs.values()), s.steps, s.batch_size, s.seed,
                             bf16, advance)
    return [e if isinstance(e, Evaluation) else _summarize(runs[e], s.task, s.steps, s.batch_size, s.seed)
            for e in evaluations]


def _summarize(run: RuleRun, task: str, steps: int, batch_size: int, seed: int) -> Evaluation:
    ev = Evaluation(str(run.rule), task, 0.0, Status.INVALID, run.error, steps=steps, batch_size=batch_size, seed=seed,
                    wall_time=run.seconds)
    if run.error is not None:
        return ev
    ev.per_lr = run.results
    trained = [r for r in run.results if not r.diverged]
    if not trained:
        ev.status = Status.DIVERGED
        ev.reason = f"every learning rate diverged (by step {max(r.diverged_at for r in run.results)})"
        return ev
    best = max(trained, key=lambda r: r.val_acc)  # the first listed among ties
    ev.status, ev.reward, ev.best_lr = Status.OK, best.val_acc, best.lr
    ev.curve = [CurvePoint(s, a) for s, a in zip(curve_steps(steps), best.curve, strict=True)]
    return ev
