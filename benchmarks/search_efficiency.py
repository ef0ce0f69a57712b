"""Sample efficiency of the search strategies on mnist1d, side by side, over several seeds.

Each (strategy, seed) search runs through the `optsearch search` command into its own SQLite db under
`--out` (existing dbs are resumed, so a larger `--budget` extends earlier runs; searches are deterministic,
so the first N trials of a longer run are exactly the trials of an N-budget run). Then, from the stores:
best-so-far reward after n unique evaluations, and how many unique evaluations each search needed to beat
Adam's tuned reward (Adam at its best learning rate of the same grid, same child budget, same seed; stored in
every db as a baseline).

    python benchmarks/search_efficiency.py --out runs/efficiency --budget 256 --seeds 0 1 --jobs 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from optsearch.dsl import parse
from optsearch.engine import Store

CHECKPOINTS = (8, 16, 32, 64, 128, 256, 512, 1024)


def run_search(out: Path, strategy: str, seed: int, budget: int, steps: int, task: str) -> Path:
    db = out / f"{strategy}-seed{seed}.sqlite"
    cmd = [sys.executable, "-m", "optsearch.cli", "search", "--task", task, "--strategy", strategy,
           "--seed", str(seed), "--budget", str(budget), "--steps", str(steps), "--db", str(db), "--top", "5"]
    if db.exists():
        cmd.append("--resume")
    log = (out / f"{strategy}-seed{seed}.log").open("a")
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return db


def curve(db: Path, budget: int) -> tuple[list[float], float]:
    """Best-so-far reward after each unique evaluation (in the order they were stored), and Adam's reward."""
    adam = parse("adam").fingerprint
    with Store(db) as store:
        trials = store.trials()
    baseline = next(t.reward for t in trials if t.fingerprint == adam and t.strategy == "baseline")
    best, out = 0.0, []
    for t in trials:
        if t.strategy != "baseline" and t.status != "rejected":
            best = max(best, t.reward)
            out.append(best)
    return out[:budget], baseline


def to_beat(best: list[float], target: float) -> int | None:
    return next((i + 1 for i, b in enumerate(best) if b > target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--budget", type=int, default=256, help="unique evaluations per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--strategies", nargs="+", default=["ppo", "random", "evolution"])
    parser.add_argument("--steps", type=int, default=400, help="child training steps (the small child budget)")
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--jobs", type=int, default=2, help="searches run at once (one core each)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(s, k) for s in args.strategies for k in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        dbs = dict(zip(runs, pool.map(lambda r: run_search(out, *r, args.budget, args.steps, args.task), runs),
                       strict=True))

    points = [c for c in CHECKPOINTS if c <= args.budget]
    print(f"{args.task}, child budget {args.steps} steps, {args.budget} unique evaluations per search, "
          f"seeds {args.seeds}")
    print(f"{'strategy':10s} {'seed':>4s} {'adam':>6s} " + " ".join(f"{'@' + str(c):>6s}" for c in points)
          + "  evals to beat adam")
    needed: dict[str, list[int | None]] = {s: [] for s in args.strategies}
    final: dict[str, list[float]] = {s: [] for s in args.strategies}
    for (strategy, seed), db in dbs.items():
        best, adam = curve(db, args.budget)
        n = to_beat(best, adam)
        needed[strategy].append(n)
        final[strategy].append(best[-1])
        cells = " ".join(f"{best[c - 1]:6.3f}" if c <= len(best) else f"{'-':>6s}" for c in points)
        print(f"{strategy:10s} {seed:4d} {adam:6.3f} {cells}  {n if n else f'not within {len(best)}'}")
    print("summary (mean over seeds; a search that never beat Adam counts as its budget):")
    mean_needed = {}
    for strategy in args.strategies:
        counts = [n if n else args.budget for n in needed[strategy]]
        mean_needed[strategy] = statistics.mean(counts)
        beat = sum(n is not None for n in needed[strategy])
        print(f"  {strategy:10s} beat adam in {beat}/{len(counts)} seeds, evals to beat {mean_needed[strategy]:.1f}, "
              f"final best {statistics.mean(final[strategy]):.4f}")
    if "ppo" in mean_needed and "random" in mean_needed:
        print(f"  sample efficiency ppo vs random (evals to beat adam): "
              f"{mean_needed['random'] / mean_needed['ppo']:.2f}× (target ≥ 2×)")
        # A second view: how many evaluations PPO needs to match what random found with its whole budget.
        for seed in args.seeds:
            rand, _ = curve(dbs["random", seed], args.budget)
            ppo, _ = curve(dbs["ppo", seed], args.budget)
            n = to_beat(ppo, rand[-1] - 1e-9)
            match = f"{len(rand) / n:.2f}×" if n else "never"
            print(f"  seed {seed}: random's best after {len(rand)} evals ({rand[-1]:.4f}) reached by ppo after "
                  f"{n or '-'} evals: {match}")


if __name__ == "__main__":
    main()
