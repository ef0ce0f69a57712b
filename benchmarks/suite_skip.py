"""What the suite's cheapest-first skip saves and what it loses, from one run that trains every rule on every task.

Rules: fresh rules of the random strategy (rejected ones skipped, as a search does) plus the zoo's hand-designed
rules. Every rule is trained on every task of the suite; the skip is then applied exactly as `evaluate_suite`
applies it (its decision depends only on the first task), so both arms see the same results. Prints the training
seconds the skip saves (the skipped rules' time on the later tasks, against the whole suite's), how many rules it
skips, the Spearman correlation of the skipped and unskipped rewards, and how many of the unskipped top 10 it drops.

    python benchmarks/suite_skip.py [--tasks mnist1d,digits] [--rules 48] [--steps 200]
"""

from __future__ import annotations

import argparse

import torch
from scipy.stats import spearmanr

from optsearch.dsl import rejection
from optsearch.strategies import make_strategy
from optsearch.tasks import Settings, evaluate_settings
from optsearch.tasks.suite import LOWEST, SKIP_BELOW, SUITE_BASELINES, aggregate, reference_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mnist1d,digits")
    parser.add_argument("--rules", type=int, default=48)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--aggregate", default="mean", choices=("mean", "min"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    strategy = make_strategy("random", seed=0)
    rules = []
    while len(rules) < args.rules:
        rules += [r for r in strategy.ask(args.rules) if rejection(r) is None][: args.rules - len(rules)]
    rules += ["sgd", "momentum", "adam", "rmsprop", "powersign", "addsign"]
    tasks = args.tasks.split(",")
    normalized, seconds = {}, {}
    for task in tasks:
        settings = Settings(task, steps=args.steps)
        ref = reference_of(settings)
        evals = evaluate_settings(rules, settings)
        normalized[task] = [ref.normalize(ev.reward) if ev.status == "ok" else LOWEST for ev in evals]
        seconds[task] = [ev.wall_time for ev in evals]
    head = normalized[tasks[0]]
    skipped = [i for i, h in enumerate(head) if h < SKIP_BELOW]
    full = [aggregate([normalized[t][i] for t in tasks], args.aggregate) for i in range(len(rules))]
    skip = [head[i] if i in skipped else full[i] for i in range(len(rules))]
    total = sum(sum(s) for s in seconds.values())
    saved = sum(seconds[t][i] for t in tasks[1:] for i in skipped)
    top = sorted(range(len(rules)), key=lambda i: -full[i])[:10]
    top_skip = set(sorted(range(len(rules)), key=lambda i: -skip[i])[:10])
    print(f"suite {args.tasks}, {len(rules)} rules ({len(SUITE_BASELINES)} baselines per task not counted), "
          f"{args.steps} steps, skip below {SKIP_BELOW} on {tasks[0]}")
    print(f"skipped {len(skipped)} rules; training time {total:.1f} s unskipped, saved {saved:.1f} s "
          f"({saved / total:.0%}); Spearman(skip, full) {spearmanr(skip, full).statistic:.3f}; "
          f"top 10 dropped by the skip: {len(set(top) - top_skip)}")
    for i in skipped:
        later = ", ".join(f"{t} {normalized[t][i]:+.2f}" for t in tasks[1:])
        print(f"  skipped {str(rules[i])[:50]:50s} {tasks[0]} {head[i]:+.2f}; would have scored {later}")


if __name__ == "__main__":
    main()
