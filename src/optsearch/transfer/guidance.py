"""How to set the learning rate of a rule: per (rule, task), the lr that stored results picked and its ratio to
Adam's on the same task and budget. Measured, never guessed: a rule without results gets no guidance.

Sources are benchmark results (`optsearch benchmark --out DIR`) and evaluation results (`optsearch evaluate ...
--json FILE`, one file per seed). Both go through the benchmark's own selection (`transfer.results.summarize`:
fewest diverged seeds, then the best mean over seeds of the validation score), so the two agree by construction.
`benchmarks/lr_guidance.py` writes the committed file, `lr_guidance.json` beside this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from optsearch.tasks.results import Evaluation
from optsearch.transfer.results import BenchmarkResult
from optsearch.transfer.train import Epoch, Run

GUIDANCE_FILE = "lr_guidance.json"
ADAM = "adam"


@dataclass(frozen=True)
class LrPick:
    """One rule's chosen lr on one task; `ratio` = lr / Adam's chosen lr there (None without Adam alongside)."""

    rule: str  # canonical rule text, or the optimizer's name where it is no rule (momentum)
    task: str
    lr: float
    ratio: float | None
    adam_lr: float | None
    score: float  # mean over seeds of the best validation metric at `lr` (the task's metric)
    diverged: int  # seeds that diverged at `lr`
    seeds: int
    budget: str  # e.g. "400 steps of batch 128"
    lrs: tuple[float, ...]  # the grid searched


def rule_key(name: str) -> str:
    """The key results are filed under: the canonical text of the rule a name or text stands for, so `nos4` and
    `powersign` (one function) share it; a name that is no rule (`momentum`) stays as it is."""
    from optsearch.optim import resolve

    try:
        return str(resolve(name))
    except ValueError:
        return name


def picks_from_benchmark(result: BenchmarkResult) -> list[LrPick]:
    """Every optimizer of `result` at the lr the benchmark's selection chose, with its ratio to Adam's."""
    summaries = {rule_key(s.optimizer): s for s in result.summaries()}
    adam = summaries.get(rule_key(ADAM))
    config = result.config
    budget = f"{config['steps_per_run']} steps of batch {config['batch_size']}"
    lrs = tuple(sorted(float(x) for x in config["lrs"]))
    return [LrPick(key, result.task, s.lr, None if adam is None else s.lr / adam.lr, None if adam is None else adam.lr,
                   s.best_val.mean, s.diverged, s.seeds, budget, lrs)
            for key, s in summaries.items()]


def evaluations_as_benchmark(evaluations: Sequence[Evaluation]) -> BenchmarkResult:
    """Evaluations of one task and budget (typically one `evaluate --json` file per seed) as a benchmark result of
    one-epoch runs, so the benchmark's selection picks their lr. A diverged member becomes a diverged run; an
    evaluation that never ran (invalid) adds nothing; a rule evaluated twice with one seed (`powersign` and `nos4`
    are one rule) counts once."""
    setups = {(e.task, e.steps, e.batch_size) for e in evaluations}
    if len(setups) != 1:
        raise ValueError(f"evaluations of one task and budget expected, got {sorted(setups)}")
    (task, steps, batch_size), = setups
    once: dict[tuple[str, int], Evaluation] = {}
    for e in evaluations:
        once.setdefault((e.rule, e.seed), e)
    runs = [Run(e.rule, p.lr, e.seed, [] if p.diverged else [Epoch(1, _nan(p.loss), p.val_acc, p.test_acc)],
                diverged=p.diverged)
            for e in once.values() for p in e.per_lr]
    config = {"steps_per_run": steps, "batch_size": batch_size, "lrs": sorted({r.lr for r in runs}),
              "seeds": len({e.seed for e in evaluations})}
    return BenchmarkResult(task, "reward", False, config, runs)


def load_evaluations(paths: Iterable[str | Path]) -> list[Evaluation]:
    """The records of `optsearch evaluate ... --json FILE` files."""
    return [Evaluation.from_dict(d) for path in paths for d in json.loads(Path(path).read_text())]


def guidance_document(picks: Iterable[LrPick], sources: dict[str, str]) -> dict[str, Any]:
    """The guidance file's content: rule -> task -> pick; `sources` says per task how it was measured."""
    rules: dict[str, dict[str, Any]] = {}
    for p in picks:
        if p.task in rules.setdefault(p.rule, {}):
            raise ValueError(f"{p.rule!r} on {p.task} is measured twice; merge results of one setup first")
        rules[p.rule][p.task] = {k: v for k, v in asdict(p).items() if k not in ("rule", "task")}
    return {"about": __doc__.split("\n\n")[0].replace("\n", " "), "sources": sources, "rules": rules}


def load_guidance(path: str | Path | None = None) -> dict[str, list[LrPick]]:
    """Rule key -> its picks, from `path` or the file shipped with the package."""
    text = (Path(path).read_text() if path is not None
            else resources.files("optsearch.transfer").joinpath(GUIDANCE_FILE).read_text())
    return {rule: [LrPick(rule, task, **{**pick, "lrs": tuple(pick["lrs"])}) for task, pick in tasks.items()]
            for rule, tasks in json.loads(text)["rules"].items()}


def describe(name: str, picks: Sequence[LrPick]) -> list[str]:
    """Lines for `optsearch show`: a headline over tasks, then per task what was measured. No picks: no lines."""
    if not picks:
        return []
    tasks = ", ".join(p.task for p in picks)
    lines = []
    with_adam = [p for p in picks if p.ratio is not None]
    if with_adam:
        ratios = _span([p.ratio for p in with_adam], "×")
        mine, adams = _span([p.lr for p in with_adam]), _span([p.adam_lr for p in with_adam])
        lines.append(f"on {tasks} {name}'s best lr was {ratios} Adam's ({mine} vs {adams})")
    else:
        lines.append(f"on {tasks} {name}'s best lr was {_span([p.lr for p in picks])}")
    for p in picks:
        edge = " (at the grid's edge: the best may lie beyond)" if p.lr in (p.lrs[0], p.lrs[-1]) else ""
        ratio = "" if p.ratio is None else f" = {p.ratio:g}× Adam's {p.adam_lr:g}"
        diverged = f", {p.diverged} of them diverged there" if p.diverged else ""
        lines.append(f"  {p.task}: lr {p.lr:g}{ratio}{edge} (val {p.score:.3g}; {p.budget}, {p.seeds} seeds"
                     f"{diverged}, lr grid {p.lrs[0]:g}..{p.lrs[-1]:g})")
    return lines


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _span(values: Sequence[float], unit: str = "") -> str:
    low, high = min(values), max(values)
    return f"{low:g}{unit}" if low == high else f"{low:g}–{high:g}{unit}"
