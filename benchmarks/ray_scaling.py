"""Unique evaluations per minute on this machine: inline, a local process pool and local Ray, same work, same run.

The work: a random search (fixed seed, so the very same rules) of `--budget` unique rules on mnist1d with a
small child budget. Executors are started before the clock (start-up is printed apart), so the ratios compare
steady throughput; they also check that every executor stored the same trials with the same rewards.

    python benchmarks/ray_scaling.py [--budget 96] [--steps 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from optsearch.engine import InlineExecutor, ProcessExecutor, search


def timed_search(executor, args) -> tuple[float, list[tuple[str, float]]]:
    start = time.perf_counter()
    result = search(task="mnist1d", strategy="random", budget=args.budget, seed=args.seed, steps=args.steps,
                    executor=executor, batch=8 * executor.workers, baselines=())
    elapsed = time.perf_counter() - start
    return elapsed, sorted((t.fingerprint, round(t.reward, 6)) for t in result.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=96)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    t0 = time.perf_counter()
    inline = InlineExecutor()
    rows.append(("inline (1 process, 1 thread)", time.perf_counter() - t0, *timed_search(inline, args)))

    t0 = time.perf_counter()
    pool = ProcessExecutor(args.workers)
    pool.submit(abs, -1).result()  # the workers are up
    started = time.perf_counter() - t0
    rows.append((f"process pool ({args.workers} workers)", started, *timed_search(pool, args)))
    pool.close()

    try:
        from optsearch.engine.ray_executor import RayExecutor
    except ImportError:
        RayExecutor = None
    if RayExecutor is not None:
        t0 = time.perf_counter()
        ray_ex = RayExecutor(args.workers)
        ray_ex.submit(abs, -1).result()
        started = time.perf_counter() - t0
        rows.append((f"ray, local ({args.workers} workers)", started, *timed_search(ray_ex, args)))
        ray_ex.close()

    print(f"mnist1d random search, {args.budget} unique rules, child budget {args.steps} steps × 6 lrs")
    base = rows[0][2]
    for name, started, elapsed, trials in rows:
        same = "same trials" if trials == rows[0][3] else "DIFFERENT trials"
        print(f"  {name:32s} start-up {started:5.1f} s  {60 * args.budget / elapsed:7.1f} evals/min  "
              f"{base / elapsed:5.2f}× inline  ({same})")
    by_name = {name.split(" ")[0]: elapsed for name, _, elapsed, _ in rows}
    if "ray," in by_name:
        print(f"  ray vs process pool: {by_name['process'] / by_name['ray,']:.2f}× (target ≥ 0.90×)")


if __name__ == "__main__":
    main()
