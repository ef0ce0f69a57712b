import importlib
import json

import pytest

from optsearch.cli import main
from optsearch.tasks import evaluate
from optsearch.tasks.settings import Settings, SettingsError
from optsearch.tasks.suite import (
    LOWEST,
    SKIP_BELOW,
    SUITE_BASELINES,
    SUITES,
    Reference,
    Suite,
    SuiteEvaluation,
    evaluate_suite,
    suite_tasks,
)

TASKS = ["digits", "mnist1d"]
FAST = dict(steps=30, batch_size=32, lrs=[1e-2, 1e-1])
DIVERGES = "exp(exp(exp(2))) * g"


def test_each_task_is_normalized_to_its_own_tuned_baselines_and_the_mean_is_the_reward():
    adam, signum = evaluate(["adam", "sign(m)"], task=TASKS, **FAST)
    for task, score in zip(TASKS, adam.scores, strict=True):
        baselines = [ev.reward for ev in evaluate(list(SUITE_BASELINES), task=task, **FAST)]
        assert score.task == task and (score.best, score.floor) == (max(baselines), min(baselines))
        assert score.normalized == pytest.approx((score.raw - min(baselines)) / (max(baselines) - min(baselines)))
    assert adam.reward == pytest.approx(sum(s.normalized for s in adam.scores) / 2) and adam.status == "ok"
    assert signum.status == "ok" and signum.reward != adam.reward


def test_the_min_aggregate_rewards_the_weakest_task():
    ev = evaluate("sign(m)", task=",".join(TASKS), aggregate="min", **FAST)
    assert ev.aggregate == "min" and ev.reward == min(s.normalized for s in ev.scores)


def test_a_rule_far_below_the_baselines_on_the_first_task_is_not_trained_on_the_others(monkeypatch):
    module = importlib.import_module("optsearch.tasks.suite")
    trained: list[tuple[str, list]] = []
    real = module.evaluate_settings
    monkeypatch.setattr(module, "evaluate_settings",
                        lambda items, s, *a: trained.append((s.task, list(items))) or real(items, s, *a))
    suite = Suite.of(TASKS, Settings(TASKS[0], **FAST))
    refs = {t: Reference(t, (("sgd", 0.5), ("adam", 0.9))) for t in TASKS}
    bad, good = evaluate_suite([DIVERGES, "adam"], suite, refs)
    assert trained == [("digits", [DIVERGES, "adam"]), ("mnist1d", ["adam"])]
    assert bad.scores[0].normalized < SKIP_BELOW and bad.skipped == ["mnist1d"] and bad.scores[1].raw is None
    assert bad.reward == LOWEST and bad.status == "diverged" and good.skipped == []


def test_an_invalid_rule_is_invalid_on_the_suite_and_scores_lowest():
    refs = {t: Reference(t, (("sgd", 0.5), ("adam", 0.9))) for t in TASKS}
    (ev,) = evaluate_suite(["g *"], Suite.of(TASKS, Settings(TASKS[0], **FAST)), refs)
    assert ev.status == "invalid" and ev.reward == LOWEST and "RuleError" in ev.reason


def test_normalization_spans_floor_to_best_and_clips_far_below():
    ref = Reference("digits", (("sgd", 0.5), ("adam", 0.9), ("m", 0.7)))
    assert (ref.normalize(0.9), ref.normalize(0.5), ref.normalize(0.7)) == pytest.approx((1.0, 0.0, 0.5))
    assert ref.normalize(0.0) == LOWEST and ref.normalize(1.0) > 1


def test_a_suite_is_named_by_a_list_by_commas_or_by_a_built_in_name():
    assert suite_tasks(["digits", "mnist1d"]) == suite_tasks("digits, mnist1d") == ("digits", "mnist1d")
    assert suite_tasks("transfer") == SUITES["transfer"] and SUITES["transfer"][0] == "fashion_tiny_conv"
    assert suite_tasks("digits") is None and suite_tasks(["digits"]) is None


@pytest.mark.parametrize("tasks, aggregate, message", [
    (["digits", "digits"], "mean", "two or more distinct tasks"),
    (["digits", "nope"], "mean", "unknown task 'nope'"),
    (TASKS, "median", "aggregate: got 'median'; allowed: mean, min"),
])
def test_a_bad_suite_is_refused_with_what_is_allowed(tasks, aggregate, message):
    with pytest.raises(SettingsError, match=message):
        Suite.of(tasks, Settings("digits"), aggregate)


def test_a_suite_evaluation_round_trips_through_a_dict():
    refs = {t: Reference(t, (("sgd", 0.5), ("adam", 0.9))) for t in TASKS}
    (ev,) = evaluate_suite(["adam"], Suite.of(TASKS, Settings(TASKS[0], **FAST)), refs)
    assert SuiteEvaluation.from_dict(ev.to_dict()) == ev


def test_the_cli_evaluates_a_suite_with_a_column_per_task_and_writes_json(tmp_path, capsys):
    out = tmp_path / "suite.json"
    assert main(["evaluate", "adam", DIVERGES, "--task", "digits,mnist1d", "--steps", "30", "--batch-size", "32",
                 "--lrs", "0.01,0.1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "suite digits,mnist1d" in printed and "skipped" in printed
    adam, bad = (SuiteEvaluation.from_dict(d) for d in json.loads(out.read_text()))
    assert [s.task for s in adam.scores] == TASKS and bad.skipped == ["mnist1d"]


@pytest.mark.parametrize("args, message", [
    (["--task", "digits,nope"], "unknown task 'nope'"),
    (["--task", "digits,mnist1d", "--aggregate", "median"], "invalid choice: 'median'"),
    (["--task", "digits,mnist1d", "--csv", "x.csv"], "use --json"),
    (["--task", "digits", "--aggregate", "min"], "aggregate: got 'min' for a single task"),
])
def test_bad_suite_input_on_the_cli_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["evaluate", "adam", *[str(tmp_path / a) if a.endswith(".csv") else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_transfer_suite_names_the_cheap_convnet_then_the_cheap_lstm_each_a_known_task():
    suite = Suite.of(SUITES["transfer"], Settings("digits"))
    assert suite.tasks == ("fashion_tiny_conv", "kjv_tiny_lstm")
