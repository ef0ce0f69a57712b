"""The PPO controller's duplicate penalty, side by side: does it keep sampling new rules, and does it find good ones?

The second discovery run's PPO collapsed onto one rule at the default penalty 0.1 (constant: a re-sampled rule's
reward minus 0.1) and needed 1.0 to escape. This runs PPO with each penalty (`--variants`, e.g. `0.1 0.5 1.0
count:0.1`, where `count:P` loses P times how often the rule was sampled before) at each seed, each search in its
own db under `--out` (an existing db resumes, so a larger `--budget` extends a run), until `--budget` unique rules
are evaluated or `--max-samples` rules are sampled, on the same reward (default: the `transfer` suite at the
search's settings). Then, from the stores: samples drawn, unique rules per sample (over the whole search and over
its last quarter of samples), and the best reward after each number of unique evaluations.

The variants of one seed run in one process, one after another, so each task's suite baselines and halving floors
(deterministic for a task, settings and seed) are trained once per seed, not once per variant.

    python benchmarks/controller_penalty.py --out runs/penalty --budget 150 --seeds 0 1 --jobs 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from optsearch import search
from optsearch.engine import Store

VARIANTS = ("0.1", "0.5", "1.0", "count:0.1")
CHECKPOINTS = (25, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500)


def penalty(variant: str) -> tuple[str, float]:
    """`0.5` -> ("constant", 0.5); `count:0.1` -> ("count", 0.1)."""
    mode, _, value = variant.rpartition(":")
    return mode or "constant", float(value)


def db_path(out: Path, variant: str, seed: int) -> Path:
    return out / f"ppo-{variant.replace(':', '-')}-seed{seed}.sqlite"


def run_seed(args: argparse.Namespace, seed: int) -> None:
    """Every variant at `seed`, one after another in this process (baselines and floors trained once)."""
    torch.set_num_threads(1)
    for variant in args.variants:
        mode, value = penalty(variant)
        db = db_path(Path(args.out), variant, seed)
        search(task=args.task, strategy="ppo", budget=args.budget, db=db, seed=seed, groups=args.groups,
               decays=args.decays, duplicate_penalty=value, penalty_mode=mode, max_samples=args.max_samples,
               steps=args.steps, entropy_weight=args.entropy_weight)
        print(f"seed {seed} {variant}: done", flush=True)


def summary(db: Path) -> dict[str, object]:
    """Samples, unique rules per sample (all / last quarter) and the best-so-far reward per unique evaluation."""
    with Store(db, readonly=True) as store:
        samples = store.samples()
        trials = [t for t in store.trials() if t.strategy != "baseline" and t.status != "rejected"]
    kinds = [s.kind for s in samples]
    tail = kinds[-max(1, len(kinds) // 4):]
    best, curve = float("-inf"), []
    for t in trials:
        best = max(best, t.reward)
        curve.append(best)
    return {"samples": len(kinds), "unique": kinds.count("new"),
            "new_rate": kinds.count("new") / max(1, len(kinds)), "tail_rate": tail.count("new") / max(1, len(tail)),
            "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/penalty")
    parser.add_argument("--task", default="transfer", help="a task or suite (default: the transfer suite)")
    parser.add_argument("--budget", type=int, default=150, help="unique evaluations per search")
    parser.add_argument("--max-samples", type=int, default=None, help="sampled rules per search (default 20 × budget)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="child steps (default: each task's own)")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--decays", action="store_true")
    parser.add_argument("--entropy-weight", type=float, default=0.0015, help="PPO's entropy bonus (default 0.0015)")
    parser.add_argument("--jobs", type=int, default=2, help="seeds run at once (one process and core each)")
    parser.add_argument("--report-only", action="store_true", help="read the dbs under --out, train nothing")
    parser.add_argument("--one-seed", action="store_true", help=argparse.SUPPRESS)  # a child process: one seed
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one_seed:
        run_seed(args, args.seeds[0])
        return
    if not args.report_only:
        def child(seed: int) -> None:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--seeds", str(seed), "--one-seed"], check=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(child, args.seeds))

    print(f"PPO on {args.task}, {args.groups} groups, decays {'on' if args.decays else 'off'}, entropy weight "
          f"{args.entropy_weight}, budget {args.budget} unique, seeds {args.seeds}")
    points = [c for c in CHECKPOINTS if c <= args.budget]
    print(f"{'penalty':>10s} {'seed':>4s} {'samples':>7s} {'unique':>6s} {'new/sample':>10s} {'last 1/4':>8s} "
          + " ".join(f"{'@' + str(c):>6s}" for c in points))
    for variant in args.variants:
        started = [seed for seed in args.seeds if db_path(out, variant, seed).is_file()]
        if not started:
            print(f"{variant:>10s}: not started")
            continue
        rows = [summary(db_path(out, variant, seed)) for seed in started]
        for seed, r in zip(started, rows, strict=True):
            cells = " ".join(f"{r['curve'][c - 1]:6.3f}" if c <= len(r["curve"]) else f"{'-':>6s}" for c in points)
            print(f"{variant:>10s} {seed:4d} {r['samples']:7d} {r['unique']:6d} {r['new_rate']:10.3f} "
                  f"{r['tail_rate']:8.3f} {cells}")
        if len(rows) < len(args.seeds):
            continue  # no mean until every seed has started
        means = [statistics.fmean(r["curve"][c - 1] for r in rows) if all(c <= len(r["curve"]) for r in rows)
                 else None for c in points]  # a checkpoint some seed has not reached yet has no mean
        mean = {k: statistics.fmean(r[k] for r in rows) for k in ("samples", "unique", "new_rate", "tail_rate")}
        print(f"{variant:>10s} {'mean':>4s} {mean['samples']:7.0f} {mean['unique']:6.0f} {mean['new_rate']:10.3f} "
              f"{mean['tail_rate']:8.3f} " + " ".join(f"{'-':>6s}" if m is None else f"{m:6.3f}" for m in means))


if __name__ == "__main__":
    main()
