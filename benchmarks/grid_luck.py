"""Is a found rule better than a baseline, or only better placed on the learning-rate grid? (issue 12)

A rule such as `m + g` takes steps about twice momentum's at the same learning rate. On a grid of decades
{…, 0.1, 1, 10} the two are tried at different effective rates, so one may win a search only because its scale
suits the grid. This script trains each family of rules on a fine grid (1, 2, 5 per decade) over fresh seeds on the
search's task and tunes each rule's rate twice, from the same runs: on the decades of the grid alone and on the
whole fine grid. The rate is the one with the best mean validation score over seeds; the score is the test score
there, mean ± standard error, with a paired t-test against the family's first rule (same seeds, same minibatches).

    python benchmarks/grid_luck.py [--task mnist1d_large] [--seeds 1-10] [--steps N]
    python benchmarks/grid_luck.py --task fashion_mnist_conv --rules adam "sign(m)" "clip(m, 1e-3)" --lrs 1e-4,...

With `--rules` (zoo names or rule texts; the first is the reference of the p-values) and `--lrs` it takes apart one
rule of your choosing instead of the built-in families: the rule, its parts, and the baseline it has to beat.
With `--tune-seeds FIRST-LAST` the rates are chosen on those seeds and each chosen rate alone is trained and
scored on `--seeds`, as the funnel's stage 3 does: a rate chosen on the seeds it is scored on flatters every rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np

from optsearch import evaluate
from optsearch.engine.funnel_analysis import score_at, tuned_scores
from optsearch.engine.stats import paired_p
from optsearch.optim.zoo import resolve
from optsearch.tasks import TaskError, get_task

FAMILIES = {
    # the search's top family against its baselines, around their best rates on mnist1d_large
    "momentum": (("m", "g", "m + g", "drop(m, 0.3) + g"), (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)),
    # the one scheduled rule among stage 2's best, against RMSProp with and without the same schedule
    "rmsprop": (("rmsprop", "rmsprop * cd", "rmsprop * sqrt|rd(3)|", "drop(rmsprop, 0.1) * sqrt|rd(3)|"),
                (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1)),
}


def decades(lrs: tuple[float, ...]) -> set[float]:
    return {lr for lr in lrs if math.isclose(math.log10(lr), round(math.log10(lr)))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mnist1d_large")
    ap.add_argument("--seeds", default="1-10", help="first-last (fresh seeds: the search ran at 0)")
    ap.add_argument("--steps", type=int, help="default: the task's")
    ap.add_argument("--rules", nargs="+", help="one family instead of the built-in ones (the first is the reference)")
    ap.add_argument("--lrs", help="its grid, comma separated (with --rules)")
    ap.add_argument("--tune-seeds", help="first-last: choose the rates on these, score them on --seeds")
    args = ap.parse_args(argv)
    families = FAMILIES
    seeds = _seed_range(ap, "--seeds", args.seeds)
    apart = args.tune_seeds is not None  # rates chosen on other seeds than those that score them
    tune = _seed_range(ap, "--tune-seeds", args.tune_seeds) if apart else seeds
    if apart and set(tune) & set(seeds):
        ap.error(f"--tune-seeds: got {args.tune_seeds!r}; allowed: seeds apart from --seeds {args.seeds!r}")
    try:
        get_task(args.task)
    except TaskError as error:
        ap.error(f"--task: {error}")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps: got {args.steps}; allowed: a whole number >= 1")
    if (args.rules is None) != (args.lrs is None):
        ap.error("--rules and --lrs go together: a family and its grid")
    if args.rules is not None:
        try:
            for rule in args.rules:
                resolve(rule)
        except ValueError as error:
            ap.error(f"--rules: {error}")
        try:
            lrs = tuple(float(lr) for lr in args.lrs.split(","))
        except ValueError:
            lrs = ()
        if not lrs or not all(lr > 0 and math.isfinite(lr) for lr in lrs):
            ap.error(f"--lrs: got {args.lrs!r}; allowed: positive learning rates, comma separated")
        families = {"given": (tuple(args.rules), lrs)}
    for family, (rules, lrs) in families.items():
        runs = {seed: evaluate(list(rules), task=args.task, lrs=list(lrs), steps=args.steps, seed=seed)
                for seed in tune}
        coarse_lrs = decades(lrs)
        chosen = f", rates chosen on seeds {args.tune_seeds}" if apart else ""
        print(f"\n{family} family on {args.task}, seeds {args.seeds}{chosen}, grid {lrs} "
              f"(decades: {sorted(coarse_lrs)})")
        print("| rule | decade grid: lr | test | fine grid: lr | test | p vs first (fine) |")
        print("|---|---|---|---|---|---|")
        reference = None
        for i, rule in enumerate(rules):
            evals = {seed: runs[seed][i] for seed in tune}
            coarse = {seed: dataclasses.replace(ev, per_lr=[p for p in ev.per_lr if p.lr in coarse_lrs])
                      for seed, ev in evals.items()}
            lr_c, scores_c = tuned_scores(coarse)
            lr_f, scores_f = tuned_scores(evals)
            if apart:  # train each chosen rate alone on the scoring seeds
                fresh = {lr: {seed: score_at(evaluate(rule, task=args.task, lrs=[lr], steps=args.steps, seed=seed),
                                             lr) for seed in seeds}
                         for lr in {lr_c, lr_f} - {None}}
                scores_c, scores_f = (fresh.get(lr, dict.fromkeys(seeds, 0.0)) for lr in (lr_c, lr_f))
            reference = reference or scores_f
            p = "—" if i == 0 else f"{paired_p(scores_f, reference):.3g}"
            coarse_text = f"{_lr(lr_c)} | {_ms(scores_c)}" if coarse_lrs else "— | —"
            print(f"| `{rule}` | {coarse_text} | {_lr(lr_f)} | {_ms(scores_f)} | {p} |")


def _seed_range(ap: argparse.ArgumentParser, flag: str, text: str) -> range:
    try:
        first, last = map(int, text.split("-"))
    except ValueError:
        first, last = 0, -1
    if last <= first or first < 0:
        ap.error(f"{flag}: got {text!r}; allowed: FIRST-LAST, whole numbers, at least two seeds")
    return range(first, last + 1)


def _lr(lr: float | None) -> str:
    return "— (never trained)" if lr is None else f"{lr:g}"


def _ms(scores: dict[int, float]) -> str:
    v = np.array(list(scores.values()))
    return f"{v.mean():.4f} ± {v.std(ddof=1) / math.sqrt(len(v)):.4f}"


if __name__ == "__main__":
    main()
