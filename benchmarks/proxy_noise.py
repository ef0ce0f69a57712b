"""Where the proxy reward's noise comes from, and what a quieter proxy costs (issue 11).

For each configuration (training-set size, validation-set size, steps) the same rules train over the paper's
learning-rate grid with several seeds, on the real stacked trainer. For each way of reading a reward off a run
(final validation accuracy; mean of the last checkpoints) it prints:
  std    pooled seed-to-seed standard deviation of one rule's reward
  rho    Spearman of one seed's ranking of the rules against the reference ranking (mean reward over
         --ref-seeds seeds at --ref-steps on the largest data), averaged over the seeds
  cost   seconds per evaluation, as a ratio to the first configuration measured in the same run
Test accuracy is never read.

    python benchmarks/proxy_noise.py [--seeds 5] [--ref-seeds 6] [--ref-steps 2000] [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from optsearch.dsl import parse
from optsearch.optim.zoo import zoo
from optsearch.tasks.data import Splits, hold_out
from optsearch.tasks.population import RuleRun, train_stacked
from optsearch.tasks.registry import fast_bf16
from optsearch.tasks.settings import PAPER_LRS

RULES = tuple(zoo)  # the whole zoo: hand-designed rules, PowerSign/AddSign and their decays, the paper's 16
SIZES = (40, 100, 100, 10)
BATCH = 128


@dataclass(frozen=True)
class Config:
    name: str
    n_train: int
    n_val: int
    steps: int


def big_pool() -> dict[str, np.ndarray]:
    """MNIST-1D generated with 40000 samples (the package's own generator, offline): 32000 train-side, 8000 test."""
    from optsearch.tasks.data import mnist1d_arrays

    return mnist1d_arrays(num_samples=40_000)


def splits(pool: dict[str, np.ndarray], n_train: int, n_val: int) -> Splits:
    """A fixed validation set of n_val held out of the training side, and the first n_train of the rest."""
    s = hold_out(pool["x"], pool["y"], pool["x_test"], pool["y_test"], n_val / len(pool["y"]))
    return Splits(s.x_train[:n_train], s.y_train[:n_train], s.x_val, s.y_val, s.x_test[:1], s.y_test[:1])


def run(data: Splits, steps: int, seed: int, bf16: bool) -> tuple[np.ndarray, float]:
    """Validation curves (rules, lrs, checkpoints) of every member, and the seconds it took."""
    runs = [RuleRun(_rule(r), PAPER_LRS) for r in RULES]
    start = time.perf_counter()
    train_stacked(SIZES, data, runs, steps, BATCH, seed, bf16)
    seconds = time.perf_counter() - start
    return np.array([[m.curve for m in r.results] for r in runs]), seconds


def _rule(text: str):
    return zoo[text].rule if text in zoo else parse(text)


def rewards(curves: np.ndarray) -> dict[str, np.ndarray]:
    """Per rule: the best over the lr grid of each way of reading a run's reward."""
    return {"final": curves[..., -1].max(1), "mean last 2": curves[..., -2:].mean(-1).max(1)}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (np.argsort(np.argsort(x, kind="stable"), kind="stable") for x in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ref-seeds", type=int, default=6)
    parser.add_argument("--ref-steps", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to check the script runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bf16 = fast_bf16("cpu")
    pool = big_pool()
    configs = [Config("today: train 3200, val 800", 3200, 800, 400),
               Config("train 24000, val 8000", 24000, 8000, 600),
               Config("train 24000, val 8000", 24000, 8000, 1000)]
    ref_steps, seeds, ref_seeds = args.ref_steps, args.seeds, args.ref_seeds
    if args.quick:
        configs = [Config(c.name, c.n_train, c.n_val, 20) for c in configs[:2]]
        ref_steps, seeds, ref_seeds = 40, 2, 2
    print(f"{len(RULES)} rules × {len(PAPER_LRS)} lrs, batch {BATCH}, bf16 {bf16}; reference: mean of {ref_seeds} "
          f"seeds at {ref_steps} steps, train 24000 / val 8000")
    ref_data = splits(pool, 24000, 8000)
    ref = np.array([rewards(run(ref_data, ref_steps, 1000 + s, bf16)[0])["final"] for s in range(ref_seeds)])
    reference = ref.mean(0)
    half = ref_seeds // 2
    print("reference ranking:", ", ".join(f"{RULES[i]} {reference[i]:.4f}" for i in np.argsort(-reference)))
    print(f"the reference's own reliability: Spearman {spearman(ref[:half].mean(0), ref[half:].mean(0)):.3f} "
          f"between the means of its first and last {half} seeds")
    base_cost = None
    print("\n| configuration | steps | reward | std | rho vs reference | cost |\n|---|---|---|---|---|---|")
    for c in configs:
        data = splits(pool, c.n_train, c.n_val)
        results, seconds = zip(*(run(data, c.steps, s, bf16) for s in range(seeds)), strict=True)
        cost = float(np.median(seconds))
        base_cost = base_cost or cost
        for kind in ("final", "mean last 2"):
            per_seed = np.array([rewards(r)[kind] for r in results])  # (seeds, rules)
            std = float(np.sqrt(per_seed.var(0, ddof=1).mean()))
            rho = float(np.mean([spearman(row, reference) for row in per_seed]))
            print(f"| {c.name} | {c.steps} | {kind} | {std:.4f} | {rho:.3f} | {cost / base_cost:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
