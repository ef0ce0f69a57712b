"""Regenerate src/optsearch/transfer/lr_guidance.json, what `optsearch show RULE` says about the learning rate:
per (rule, task) the lr that stored results picked and its ratio to Adam's on the same task and budget.

Sources (all committed):
- docs/discovery/transfer/fmnist-*/benchmark.json: `optsearch benchmark` on fashion_mnist_conv (sgd, momentum,
  adam, rmsprop, powersign, addsign and five discovered rules), 3 epochs × 100 steps of batch 100, 3 seeds,
  lrs 1e-5..10.
- docs/discovery/guidance/{mnist1d,digits}-seed{0..4}.json: every zoo rule, made on a 2-core shared CPU
  machine (about 25 s per file) by `--run`, which runs for each task and seed

    optsearch evaluate <every zoo name> --task TASK --steps 400 --lrs 1e-5,1e-4,1e-3,1e-2,1e-1,1,10 \\
        --seed S --threads 1 --json docs/discovery/guidance/TASK-seedS.json

Usage (from the repository root):

    python benchmarks/lr_guidance.py [--run]    # --run: make the evaluate files that are missing first
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from optsearch.cli import main as optsearch
from optsearch.optim import zoo
from optsearch.transfer.guidance import (
    GUIDANCE_FILE,
    evaluations_as_benchmark,
    guidance_document,
    load_evaluations,
    picks_from_benchmark,
)
from optsearch.transfer.results import BenchmarkResult, merge

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "docs/discovery/transfer").glob("fmnist-*"))
EVALUATIONS = ROOT / "docs/discovery/guidance"
TASKS, SEEDS, STEPS = ("mnist1d", "digits"), range(5), 400
LRS = "1e-5,1e-4,1e-3,1e-2,1e-1,1,10"
OUT = ROOT / "src/optsearch/transfer" / GUIDANCE_FILE


def evaluate_command(task: str, seed: int) -> list[str]:
    return [*zoo, "--task", task, "--steps", str(STEPS), "--lrs", LRS, "--seed", str(seed), "--threads", "1",
            "--json", str(EVALUATIONS / f"{task}-seed{seed}.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the evaluate commands whose files are missing")
    args = parser.parse_args()
    if args.run:
        EVALUATIONS.mkdir(parents=True, exist_ok=True)
        for task in TASKS:
            for seed in SEEDS:
                if not (EVALUATIONS / f"{task}-seed{seed}.json").exists():
                    assert optsearch(["evaluate", *evaluate_command(task, seed)]) == 0
    results = [merge([BenchmarkResult.load(d) for d in BENCHMARKS])]
    sources = {results[0].task: "optsearch benchmark, " + ", ".join(str(d.relative_to(ROOT)) for d in BENCHMARKS)}
    for task in TASKS:
        evaluations = load_evaluations(sorted(EVALUATIONS.glob(f"{task}-seed*.json")))
        results.append(evaluations_as_benchmark(evaluations))
        seeds = ", ".join(str(s) for s in sorted({e.seed for e in evaluations}))
        sources[task] = (f"optsearch evaluate <every zoo name> --task {task} --steps {STEPS} --lrs {LRS} --seed S "
                         f"--threads 1 --json docs/discovery/guidance/{task}-seedS.json, S = {seeds}")
    picks = [p for r in results for p in picks_from_benchmark(r)]
    OUT.write_text(json.dumps(guidance_document(picks, sources), indent=1) + "\n")
    for p in picks:
        ratio = "-" if p.ratio is None else f"{p.ratio:g}"
        print(f"{p.task:20} {p.rule[:44]:44} lr {p.lr:<8g} ×Adam {ratio:<6} val {p.score:.3f} "
              f"div {p.diverged}/{p.seeds}")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
