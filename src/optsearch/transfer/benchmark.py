"""The transfer benchmark (the paper's Tables 1 and 2, scaled to a CPU): optimizers × learning rates × seeds on a
task of the registry, each optimizer reported at the learning rate its validation metric picks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table

from optsearch.optim import make_optimizer
from optsearch.tasks.data import Splits
from optsearch.tasks.precision import fast_bf16
from optsearch.tasks.registry import Task, get_task, load_splits
from optsearch.transfer.results import BenchmarkResult, Stat
from optsearch.transfer.train import Budget, OptimizerFactory, train_run

DEFAULT_LRS = tuple(float(10.0**k) for k in range(-5, 2))
"""Seven log-spaced learning rates, 1e-5 .. 10, as the paper's grid: wide enough for SGD, Adam and the sign rules."""


def run_benchmark(optimizers: Sequence[str], task: str | Task, epochs: int | None = None,
                  lrs: Sequence[float] | None = None, seeds: int = 3, out_dir: str | Path | None = None,
                  batch_size: int | None = None, steps_per_epoch: int | None = None, data_fraction: float = 1.0,
                  eval_size: int | None = None, data_dir: str | Path | None = None, bf16: bool | None = None,
                  console: Console | None = None) -> BenchmarkResult:
    """Train every optimizer (a zoo name such as `adam`, `momentum`, `powersign-cd`, or rule text) at every lr of
    the grid with seeds 0..seeds-1 on `task` (a task name, a "file.py:make_task" spec, or a Task); print the
    summary table; write JSON and CSV to `out_dir` if given (rewritten after every optimizer, so a long benchmark
    that is stopped keeps what finished).

    `steps_per_epoch` caps an epoch, `data_fraction` keeps a fixed random part of the training split and
    `eval_size` the first n validation/test examples: knobs that make runs fit a small machine. `bf16` autocast
    is on by default where the CPU computes bf16 natively (2.5-4x faster convnets) and the task allows it
    (`Task.bf16`), off elsewhere.
    """
    spec = get_task(task)
    if not optimizers:
        raise ValueError("give at least one optimizer (a zoo name such as adam, or rule text)")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    if not 0.0 < data_fraction <= 1.0:
        raise ValueError(f"data_fraction must be in (0, 1], got {data_fraction}")
    for name in optimizers:  # fail on a bad name now, not after hours of training
        make_optimizer(name, [torch.zeros(1, requires_grad=True)], lr=0.1, total_steps=1)
    bf16 = (spec.bf16 and fast_bf16("cpu")) if bf16 is None else bf16
    budget = Budget(epochs or spec.epochs, batch_size or spec.benchmark_batch_size, steps_per_epoch, eval_size, bf16)
    grid = tuple(float(lr) for lr in (lrs or DEFAULT_LRS))
    console = console or Console()
    splits = _subset(load_splits(spec, data_dir), data_fraction)
    steps = budget.steps(len(splits.y_train))
    config = {**asdict(budget), "lrs": list(grid), "seeds": seeds, "data_fraction": data_fraction,
              "steps_per_run": budget.epochs * steps, "train_examples": len(splits.y_train),
              "data_dir": None if data_dir is None else str(data_dir), "description": spec.description}
    result = BenchmarkResult(spec.name, spec.metric, spec.scoring.lower_is_better, config)
    console.print(f"[bold]{spec.name}[/]: {spec.description}; {len(optimizers)} optimizers × {len(grid)} lrs × {seeds} "
                  f"seeds, {budget.epochs} epochs × {steps} steps of batch {budget.batch_size}")
    for name in optimizers:
        for lr in grid:
            for seed in range(seeds):
                run = train_run(spec, splits, name, _factory(name, seed), lr, seed, budget)
                result.runs.append(run)
                last = f"val {run.epochs[-1].val:.4g}" if run.epochs else "no epoch finished"
                console.print(f"  {name} lr={lr:g} seed={seed}: {'diverged, ' if run.diverged else ''}{last} "
                              f"({run.seconds:.1f} s)", style="dim")
        if out_dir is not None:
            result.write(out_dir)
    console.print(summary_table(result))
    return result


def _factory(name: str, seed: int) -> OptimizerFactory:
    def make(params: list[torch.nn.Parameter], lr: float, total_steps: int) -> torch.optim.Optimizer:
        return make_optimizer(name, params, lr=lr, total_steps=total_steps, seed=seed)

    return make


def _subset(splits: Splits, fraction: float) -> Splits:
    """A fixed random `fraction` of the training split (the same for every optimizer and seed)."""
    if fraction == 1.0:
        return splits
    n = max(1, int(len(splits.y_train) * fraction))
    keep = torch.from_numpy(np.random.default_rng(0).permutation(len(splits.y_train))[:n])
    return Splits(splits.x_train[keep], splits.y_train[keep], splits.x_val, splits.y_val, splits.x_test, splits.y_test)


def summary_table(result: BenchmarkResult) -> Table:
    """The paper's table: per optimizer at its chosen lr, Final/Best Val/Test as mean ± std over seeds."""
    better = "lower" if result.lower_is_better else "higher"
    table = Table(title=f"{result.task}: {result.metric} ({better} is better), mean±std over seeds",
                  caption="div.: seeds that diverged at that lr", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Optimizer", overflow="fold", min_width=12)
    for header in ("lr", "Final Val", "Final Test", "Best Val", "Best Test", "div."):
        table.add_column(header, justify="right", no_wrap=True)
    for s in result.summaries():
        stats = (s.final_val, s.final_test, s.best_val, s.best_test)
        table.add_row(s.optimizer, f"{s.lr:g}", *(format_stat(x, result.metric, "±") for x in stats),
                      f"{s.diverged}/{s.seeds}")
    return table


def format_stat(stat: Stat, metric: str, sep: str = " ± ") -> str:
    """Accuracy in percent as the paper prints it; perplexity and mse as they are."""
    if not math.isfinite(stat.mean):
        return "—"
    scale = 100.0 if metric == "accuracy" else 1.0
    return f"{scale * stat.mean:.2f}{sep}{scale * stat.std:.2f}"
