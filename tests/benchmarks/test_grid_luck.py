"""benchmarks/grid_luck.py takes apart a rule given on the command line, and refuses bad input in one line."""

import numpy as np

from optsearch import evaluate
from optsearch.engine.funnel_analysis import score_at, tuned_scores


def test_a_given_family_is_tuned_on_the_decades_and_on_the_whole_grid(run_benchmark):
    proc = run_benchmark("grid_luck.py", "--task", "digits", "--steps", "5", "--seeds", "1-2",
                         "--rules", "g", "clip(m, 1e-3) + g", "--lrs", "0.1,0.2,1")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["g", "clip(m, 1e-3) + g"]
    first, second = (row.split(" | ") for row in rows)
    assert float(first[1]) in (0.1, 1.0)  # the decade grid never picks 0.2
    assert float(first[3]) in (0.1, 0.2, 1.0)
    assert first[5].endswith("— |") and second[5] != "— |"  # the p-value is against the first rule


def test_with_tune_seeds_the_rate_is_chosen_on_them_and_scored_alone_on_the_others(run_benchmark):
    proc = run_benchmark("grid_luck.py", "--task", "digits", "--steps", "5", "--seeds", "3-4", "--tune-seeds", "1-2",
                         "--rules", "g", "--lrs", "0.01,1")
    assert proc.returncode == 0, proc.stderr
    lr, _ = tuned_scores({seed: evaluate("g", task="digits", lrs=[0.01, 1], steps=5, seed=seed) for seed in (1, 2)})
    scores = [score_at(evaluate("g", task="digits", lrs=[lr], steps=5, seed=seed), lr) for seed in (3, 4)]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| `g`")).split(" | ")
    assert float(row[3]) == lr and row[4].startswith(f"{np.mean(scores):.4f} ± ")
    assert "rates chosen on seeds 1-2" in proc.stdout


def test_a_grid_without_decades_has_no_decade_column(run_benchmark):
    proc = run_benchmark("grid_luck.py", "--task", "digits", "--steps", "3", "--seeds", "1-2",
                         "--rules", "g", "--lrs", "0.2,0.5")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| `g`"))
    assert row.split(" | ")[1:3] == ["—", "—"]


def test_bad_input_is_refused_in_one_line_before_anything_trains(run_benchmark):
    for args, words in (
        (("--rules", "g", "not_a_rule(", "--lrs", "0.1"), "not_a_rule("),
        (("--rules", "g"), "--rules and --lrs go together"),
        (("--rules", "g", "--lrs", "0.1,-1"), "positive learning rates"),
        (("--task", "no_such_task"), "no_such_task"),
        (("--seeds", "3-3"), "at least two seeds"),
        (("--seeds", "1-3", "--tune-seeds", "3-4"), "apart from --seeds"),
        (("--tune-seeds", "x"), "--tune-seeds"),
        (("--steps", "0"), "--steps"),
    ):
        proc = run_benchmark("grid_luck.py", *args)
        assert proc.returncode == 2, args
        assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""
