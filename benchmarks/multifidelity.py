"""Successive halving against full evaluation, measured side by side in one run on the same rules and settings.

Rules: trials of the first run's committed stores (docs/discovery/{ppo,random}-seed0) and fresh rules of the random
strategy (rejected ones skipped, as the search driver does), deduplicated by fingerprint. Chunks of `--chunk` rules
(a search worker's job) are evaluated at `full` then at `halving` fidelity, alternating, so both see the same
machine load. The halving floors' reference run (Adam and SGD, once per process) is counted in halving's time.

Prints unique evaluations per minute of each (wall and CPU time) and their ratio, the Spearman correlation of the
two rewards over the rules halving kept to the end, and how many of full's top 20 are in halving's top 20.
`--save FILE` writes both arms' evaluations as JSON (full's per-lr curves let one simulate other halving rules).

    python benchmarks/multifidelity.py [--rules 200] [--steps 400] [--task mnist1d] [--save out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from optsearch.dsl import Rule, rejection
from optsearch.strategies import make_strategy
from optsearch.tasks import Settings, evaluate_settings
from optsearch.tasks.evaluate import halving_policy

# named, not globbed: the stores of the measurement in docs/results.md (a later store would change its rules)
STORES = [Path(__file__).parents[1] / "docs" / "discovery" / f"{n}.sqlite" for n in ("ppo-seed0", "random-seed0")]


def collect_rules(n: int, seed: int) -> list[Rule]:
    """Half from the committed stores (a mix of good and bad rules a search meets), half fresh random ones."""
    stored = []
    for db in STORES:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            stored += [tuple(json.loads(t)) for (t,) in con.execute(
                "SELECT tokens FROM trials WHERE status IN ('ok', 'diverged') AND strategy != 'baseline'")]
    random.Random(seed).shuffle(stored)
    rules: dict[str, Rule] = {}
    for tokens in stored:
        rule = Rule.from_tokens(tokens)
        if len(rules) < n // 2 and rejection(rule) is None:
            rules.setdefault(rule.fingerprint, rule)
    strategy = make_strategy("random", seed=seed)
    while len(rules) < n:
        for rule in strategy.ask(32):
            if len(rules) < n and rejection(rule) is None:
                rules.setdefault(rule.fingerprint, rule)
    return list(rules.values())


def top(rewards: list[float], k: int) -> set[int]:
    return set(sorted(range(len(rewards)), key=lambda i: -rewards[i])[:k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--chunk", type=int, default=8, help="rules per evaluate call (a search worker's job)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write both arms' evaluations here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rules = collect_rules(args.rules, args.seed)
    full = Settings(args.task, steps=args.steps, seed=args.seed)
    halving = full.replace(fidelity="halving")
    clock = {"full": [0.0, 0.0], "halving": [0.0, 0.0]}
    results: dict[str, list] = {"full": [], "halving": []}
    wall, cpu = time.perf_counter(), time.process_time()
    halving_policy(halving.resolved())  # the floors' reference run, once per process
    clock["halving"] = [time.perf_counter() - wall, time.process_time() - cpu]
    for i in range(0, len(rules), args.chunk):
        chunk = rules[i:i + args.chunk]
        for name, settings in (("full", full), ("halving", halving)):
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] += evaluate_settings(chunk, settings)
            clock[name][0] += time.perf_counter() - wall
            clock[name][1] += time.process_time() - cpu
        print(f"{i + len(chunk)}/{len(rules)} rules", flush=True)

    n = len(rules)
    rate = {name: [60 * n / seconds for seconds in clock[name]] for name in clock}
    rf = [e.reward for e in results["full"]]
    rh = [e.reward for e in results["halving"]]
    kept = [i for i, e in enumerate(results["halving"]) if e.stopped_at is None]
    rho = spearmanr([rf[i] for i in kept], [rh[i] for i in kept]).statistic
    stopped = n - len(kept)
    lost = [i for i in top(rf, 20) if results["halving"][i].stopped_at is not None]
    print(f"\n{n} rules, {args.task}, {args.steps} steps, seed {args.seed}, chunks of {args.chunk}")
    print(f"{'':10s} {'evals/min (wall)':>17s} {'evals/min (CPU)':>16s}")
    for name in ("full", "halving"):
        print(f"{name:10s} {rate[name][0]:17.1f} {rate[name][1]:16.1f}")
    print(f"{'ratio':10s} {rate['halving'][0] / rate['full'][0]:16.2f}× {rate['halving'][1] / rate['full'][1]:15.2f}×")
    print(f"rules stopped by halving: {stopped} ({stopped / n:.0%}); of full's top 20: {len(lost)}")
    print(f"Spearman(full, halving) over the {len(kept)} rules halving kept: {rho:.4f}")
    print(f"full's top 20 in halving's top 20: {len(top(rf, 20) & top(rh, 20))}")
    changed = sum(1 for i in kept if rf[i] != rh[i])
    print(f"kept rules whose reward differs from full's: {changed}")
    if args.save:
        Path(args.save).write_text(json.dumps({k: [e.to_dict() for e in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
