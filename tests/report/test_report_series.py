import numpy as np

from optsearch.engine.store import Sample, Trial
from optsearch.report.series import kind_counts, learning_curve, pareto_front


def sample(reward, kind="new"):
    return Sample(0, "g", ["g"], "fp", reward, kind)


def trial(complexity, reward, rule="r"):
    return Trial(rule, [], rule + str(complexity) + str(reward), "ok", reward, complexity=complexity)


def test_learning_curve_has_running_mean_and_best_so_far():
    c = learning_curve([sample(r) for r in (0.1, 0.5, 0.3, float("nan"))], window=2)
    assert list(c.n) == [1, 2, 3, 4]
    np.testing.assert_allclose(c.reward, [0.1, 0.5, 0.3, 0.0])  # a NaN reward counts as 0
    np.testing.assert_allclose(c.running_mean, [0.1, 0.3, 0.4, 0.15])
    np.testing.assert_allclose(c.best, [0.1, 0.5, 0.5, 0.5])


def test_kind_counts_are_cumulative():
    counts = kind_counts([sample(0, k) for k in ("new", "duplicate", "new", "rejected")])
    assert list(counts["new"]) == [1, 1, 2, 2]
    assert list(counts["duplicate"]) == [0, 1, 1, 1]
    assert list(counts["rejected"]) == [0, 0, 0, 1]


def test_pareto_front_keeps_rules_no_simpler_rule_beats():
    trials = [trial(1, 0.5), trial(3, 0.4), trial(3, 0.7), trial(5, 0.6), trial(7, 0.9), trial(1, 0.3)]
    front = pareto_front(trials)
    assert [(t.complexity, t.reward) for t in front] == [(1, 0.5), (3, 0.7), (7, 0.9)]
