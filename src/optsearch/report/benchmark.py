"""The report of a transfer benchmark: the paper's table, learning curves at the chosen lrs, lr sensitivity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optsearch.report import plots
from optsearch.report.page import Cell, Code, Image, Page, Section, Table, plain, write_page
from optsearch.transfer.benchmark import format_stat
from optsearch.transfer.results import BenchmarkResult, Summary, merge


def write_benchmark_report(bench_dirs: str | Path | Sequence[str | Path], out_dir: str | Path) -> Path:
    """Render the results `run_benchmark` wrote to `bench_dirs` (one folder, or several of the same setup, merged)
    into `out_dir`; returns the path of `index.html`."""
    dirs = [bench_dirs] if isinstance(bench_dirs, str | Path) else list(bench_dirs)
    result = merge([BenchmarkResult.load(d) for d in dirs])
    summaries = result.summaries()
    better = "lower" if result.lower_is_better else "higher"
    unit = " (%)" if result.metric == "accuracy" else ""
    rows: list[list[Cell]] = [
        [Code(s.optimizer), f"{s.lr:g}", *(format_stat(x, result.metric) for x in
                                           (s.final_val, s.final_test, s.best_val, s.best_test)),
         f"{s.diverged}/{s.seeds}"] for s in summaries]
    table = Table(["optimizer", "lr", f"Final Val{unit}", f"Final Test{unit}", f"Best Val{unit}", f"Best Test{unit}",
                   "diverged"], rows)
    config: list[list[Cell]] = [["task", Code(result.task)], ["metric", f"{result.metric} ({better} is better)"]]
    config += [[key, Code(plain(value))] for key, value in result.config.items() if value is not None]
    page = Page(f"optsearch transfer benchmark: {result.task}", [
        Section("Results", [
            f"Each optimizer at the learning rate whose mean (over seeds) best validation {result.metric} is best, "
            "among the rates where the fewest seeds diverged. Best Test is the test metric at the epoch of best "
            "validation; mean ± standard deviation over seeds; a diverged seed has no final numbers.", table]),
        Section("Learning curves", [Image(
            "curves.png", plots.benchmark_curves_png(_curves(result, summaries), result.metric, result.lower_is_better),
            "learning curves", "At each optimizer's chosen lr; the band is ± one standard deviation over seeds.")]),
        Section("Learning-rate sensitivity", [Image(
            "lr_sensitivity.png", plots.lr_sensitivity_png(
                {s.optimizer: (list(s.best_val_by_lr), list(s.best_val_by_lr.values())) for s in summaries},
                result.metric, result.lower_is_better), "learning-rate sensitivity",
            "Gaps are learning rates where a seed diverged before its first epoch ended.")]),
        Section("Setup", [Table(["setting", "value"], config)]),
    ])
    return write_page(page, out_dir)


def _curves(result: BenchmarkResult, summaries: list[Summary]) -> dict[str, dict[str, np.ndarray]]:
    """Per optimizer at its chosen lr: epoch, and mean/std over seeds of train loss and validation metric
    (epochs a diverged seed never reached average the seeds that did)."""
    curves = {}
    for s in summaries:
        runs = [r for r in result.runs if r.optimizer == s.optimizer and r.lr == s.lr and r.epochs]
        n = max((len(r.epochs) for r in runs), default=0)
        curve: dict[str, np.ndarray] = {"epoch": np.arange(1, n + 1)}
        for key in ("train_loss", "val"):
            grid = np.full((len(runs), n), np.nan)
            for i, r in enumerate(runs):
                grid[i, : len(r.epochs)] = [getattr(e, key) for e in r.epochs]
            seeds = np.isfinite(grid).sum(axis=0)
            mean = np.nanmean(grid, axis=0)
            curve[f"{key}_mean"] = mean  # sample std, as the table's; 0 where one seed got that far
            curve[f"{key}_std"] = np.sqrt(np.nansum((grid - mean) ** 2, axis=0) / np.maximum(seeds - 1, 1))
        curves[s.optimizer] = curve
    return curves
