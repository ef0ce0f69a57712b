"""Benchmark results: every run's per-epoch curve, and per optimizer the paper's four numbers at the lr validation
picks. Written as JSON (everything) and CSV (the summary table; the curves), and read back by the report."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optsearch.transfer.train import Epoch, Run

RESULT_FILE = "benchmark.json"


@dataclass
class Stat:
    """Mean ± sample standard deviation over seeds (0 for one seed; NaN for none)."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        a = np.asarray(values, dtype=float)
        if not len(a):
            return cls(math.nan, math.nan)
        return cls(float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0)


@dataclass
class Summary:
    """One optimizer at its chosen lr: the paper's Final Val, Final Test, Best Val, Best Test (Table 1)."""

    optimizer: str
    lr: float
    final_val: Stat
    final_test: Stat
    best_val: Stat
    best_test: Stat  # the test metric at the epoch of best validation metric
    diverged: int  # seeds that diverged at this lr
    seeds: int
    best_val_by_lr: dict[float, float]  # mean over seeds of each run's best val, NaN where any seed never finished


@dataclass
class BenchmarkResult:
    task: str
    metric: str  # accuracy | perplexity
    lower_is_better: bool
    config: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    @property
    def optimizers(self) -> list[str]:
        return list(dict.fromkeys(r.optimizer for r in self.runs))

    def summaries(self) -> list[Summary]:
        return [summarize([r for r in self.runs if r.optimizer == name], self.lower_is_better)
                for name in self.optimizers]

    # --- files ---------------------------------------------------------------------------------
    def write(self, out_dir: str | Path) -> Path:
        """Write benchmark.json, summary.csv and curves.csv into `out_dir`; returns the folder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        doc = {"task": self.task, "metric": self.metric, "lower_is_better": self.lower_is_better,
               "config": self.config, "summary": [_summary_row(s) for s in self.summaries()],
               "runs": [asdict(r) for r in self.runs]}
        (out / RESULT_FILE).write_text(json.dumps(doc, indent=1, allow_nan=True))
        _write_csv(out / "summary.csv", [_summary_row(s) for s in self.summaries()])
        _write_csv(out / "curves.csv", [{"optimizer": r.optimizer, "lr": r.lr, "seed": r.seed, **asdict(e)}
                                        for r in self.runs for e in r.epochs])
        return out

    @classmethod
    def load(cls, bench_dir: str | Path) -> BenchmarkResult:
        path = Path(bench_dir) / RESULT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no benchmark results at {path} (run `optsearch benchmark ... --out DIR`)")
        doc = json.loads(path.read_text())
        runs = [Run(**{**r, "epochs": [Epoch(**e) for e in r["epochs"]]}) for r in doc["runs"]]
        return cls(doc["task"], doc["metric"], doc["lower_is_better"], doc["config"], runs)


def merge(results: Sequence[BenchmarkResult]) -> BenchmarkResult:
    """One result from benchmarks run apart (e.g. optimizers split over processes) with the same task and setup."""
    first = results[0]
    for other in results[1:]:
        if (other.task, other.config) != (first.task, first.config):
            raise ValueError(f"cannot merge benchmarks of different setups: {first.task} {first.config} vs "
                             f"{other.task} {other.config}")
    return BenchmarkResult(first.task, first.metric, first.lower_is_better, first.config,
                           [run for r in results for run in r.runs])


def best_epoch(run: Run, lower_is_better: bool) -> Epoch | None:
    if not run.epochs:
        return None
    pick = min if lower_is_better else max
    return pick(run.epochs, key=lambda e: e.val)


def summarize(runs: Sequence[Run], lower_is_better: bool) -> Summary:
    """Pick the lr with the fewest diverged seeds, then the best mean (over seeds) of each run's best validation
    metric, as the paper picks by validation; report the four numbers there, over seeds."""
    by_lr: dict[float, list[Run]] = {}
    for r in runs:
        by_lr.setdefault(r.lr, []).append(r)
    sign = 1.0 if lower_is_better else -1.0
    scores = {lr: _mean_best_val(rs, lower_is_better) for lr, rs in by_lr.items()}

    def rank(lr: float) -> tuple[int, float]:
        score = scores[lr]
        return sum(r.diverged for r in by_lr[lr]), sign * score if math.isfinite(score) else math.inf

    lr = min(by_lr, key=rank)
    chosen = by_lr[lr]
    finished = [r for r in chosen if not r.diverged]
    bests = [e for e in (best_epoch(r, lower_is_better) for r in chosen) if e is not None]
    return Summary(chosen[0].optimizer, lr,
                   final_val=Stat.of([r.epochs[-1].val for r in finished]),
                   final_test=Stat.of([r.epochs[-1].test for r in finished]),
                   best_val=Stat.of([e.val for e in bests]), best_test=Stat.of([e.test for e in bests]),
                   diverged=sum(r.diverged for r in chosen), seeds=len(chosen), best_val_by_lr=scores)


def _mean_best_val(runs: Sequence[Run], lower_is_better: bool) -> float:
    bests = [best_epoch(r, lower_is_better) for r in runs]
    return math.nan if any(e is None for e in bests) else float(np.mean([e.val for e in bests]))


def _summary_row(s: Summary) -> dict[str, Any]:
    row: dict[str, Any] = {"optimizer": s.optimizer, "lr": s.lr}
    for key in ("final_val", "final_test", "best_val", "best_test"):
        stat: Stat = getattr(s, key)
        row[f"{key}_mean"], row[f"{key}_std"] = stat.mean, stat.std
    row["diverged"], row["seeds"] = s.diverged, s.seeds
    return row


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
