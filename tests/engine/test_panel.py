from pathlib import Path

import pytest

from optsearch.cli import main
from optsearch.engine.funnel_analysis import tuned_scores
from optsearch.engine.funnel_plan import SCORE, TRANSFER
from optsearch.engine.panel import bootstrap, judge, read_panel
from optsearch.engine.store import Store, StoredEvaluation, StoreError
from optsearch.optim.zoo import resolve
from optsearch.tasks.results import Evaluation, LrResult
from optsearch.tasks.settings import Settings

RULES = ["g", "m", "adam", "rmsprop"]


def write_panel(path, scores):
    """A panel from task -> seed -> each rule's score (one learning rate; validation = test score)."""
    with Store(path) as store:
        for task, by_seed in scores.items():
            for seed, values in by_seed.items():
                for text, value in zip(RULES, values, strict=True):
                    rule = resolve(text)
                    ev = Evaluation(str(rule), task, value, "ok", per_lr=[LrResult(0.1, value, value)], best_lr=0.1)
                    store.add_evaluation(StoredEvaluation(rule.fingerprint, str(rule), TRANSFER, task, seed, "k", ev))
    return read_panel(path)


def test_the_held_out_mean_rank_averages_each_tasks_ranks_over_its_mean_scores(tmp_path):
    panel = write_panel(tmp_path / "p.sqlite", {"a": {0: [0.1, 0.2, 0.3, 0.4], 1: [0.3, 0.2, 0.3, 0.4]},
                                                "b": {0: [0.4, 0.3, 0.2, 0.1]}})
    assert list(panel.rules.values()) == [str(resolve(r)) for r in RULES] and panel.tasks == ["a", "b"]
    assert panel.scores("a") == pytest.approx([0.2, 0.2, 0.3, 0.4])
    assert panel.mean_rank() == pytest.approx([(3.5 + 1) / 2, (3.5 + 2) / 2, (2 + 3) / 2, (1 + 4) / 2])


@pytest.mark.parametrize("second, expected", [([0.1, 0.2, 0.3, 0.4], 1.0), ([0.4, 0.3, 0.2, 0.1], -1.0)])
def test_split_half_reliability_compares_even_and_odd_seeds(tmp_path, second, expected):
    panel = write_panel(tmp_path / "p.sqlite", {"a": {0: [0.1, 0.2, 0.3, 0.4], 1: second}})
    verdict = judge(panel, Settings("digits"), rewards=([1, 2, 3, 4], 0.5))
    assert verdict.split_half == pytest.approx(expected)


def test_a_proxy_is_correlated_with_the_mean_rank_and_each_task_beside_their_agreement(tmp_path):
    panel = write_panel(tmp_path / "p.sqlite", {"a": {0: [0.1, 0.2, 0.3, 0.4]}, "b": {0: [0.2, 0.1, 0.4, 0.3]}})
    verdict = judge(panel, Settings("digits"), rewards=([1, 2, 3, 4], 0.5))
    a, b = verdict.tasks
    assert (a.against, a.rho, b.rho) == ("a", pytest.approx(1.0), pytest.approx(0.6))
    # ranks a [4, 3, 2, 1], b [3, 4, 1, 2]: mean [3.5, 3.5, 1.5, 1.5], whose Spearman with 1..4 is 2/√5
    assert verdict.mean_rank.rho == pytest.approx(2 / 5 ** 0.5)
    assert verdict.agreement == [("a", "b", pytest.approx(0.6))]
    assert verdict.seconds_per_rule == 0.5 and verdict.rules == 4


def test_the_bootstrap_interval_holds_the_estimate_and_narrows_with_more_rules():
    x = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.8, 0.7]
    y = [0.2, 0.4, 0.1, 0.8, 0.6, 0.3, 0.9, 0.5]
    few, many = bootstrap(x, y, "t"), bootstrap(x * 4, y * 4, "t")
    assert few.low <= few.rho <= few.high and few == bootstrap(x, y, "t")
    assert many.high - many.low < few.high - few.low


def test_a_file_without_held_out_rows_of_enough_rules_is_refused(tmp_path):
    with pytest.raises(StoreError, match="no file"):
        read_panel(tmp_path / "missing.sqlite")
    Store(tmp_path / "empty.sqlite").close()
    with pytest.raises(StoreError, match=r"0 rule\(s\) scored on every held-out task"):
        read_panel(tmp_path / "empty.sqlite")


def test_build_panel_then_judge_a_proxy_on_it_from_the_cli(tmp_path, capsys):
    panel = str(tmp_path / "panel.sqlite")
    build = ["build-panel", panel, "--rules", "sgd", "adam", "sign(m)", "m", "--tasks", "digits", "--seeds", "2",
             "--steps", "20", "--lrs", "0.01,0.1"]
    assert main(build) == 0 and "8 results computed" in capsys.readouterr().out
    assert main(build) == 0 and "0 results computed" in capsys.readouterr().out  # resumable: nothing retrained
    assert main(["panel", panel, "--task", "digits", "--steps", "20", "--lrs", "0.01,0.1"]) == 0
    out = capsys.readouterr().out
    assert "held-out mean rank" in out and "split-half" in out and "s per rule" in out
    assert main(["panel", panel, "--task", "digits,mnist1d", "--aggregate", "min", "--steps", "20", "--lrs",
                 "0.01,0.1"]) == 0
    assert "proxy digits,mnist1d" in capsys.readouterr().out


def test_a_funnel_db_is_a_panel_of_its_finalists_and_baselines():
    panel = read_panel(Path(__file__).parents[2] / "docs" / "discovery" / "run2-ppo.sqlite")
    assert panel.tasks == ["fashion_mnist_conv", "kjv_char_lstm"] and len(panel.rules) >= 9
    assert all(len(panel.seeds(task)) == 3 for task in panel.tasks) and "adam" in panel.rules.values()


def test_a_bad_proxy_is_refused_before_the_panel_is_read(tmp_path, capsys):
    assert main(["panel", str(tmp_path / "missing.sqlite"), "--task", "digits,nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--rules", "sgd", "adam", "--tasks", "digits"], "rules: got 2 distinct rule(s); allowed: 3 or more"),
    (["--rules", "sgd", "adam", "m", "--tasks", "digits,nope"], "unknown task 'nope'"),
    (["--rules", "sgd", "adam", "m", "--tasks", "digits", "--seeds", "0"], "allowed: a whole number >= 1"),
    (["--rules", "sgd", "adam", "m", "--tasks", "digits", "--steps", "cifar=5"],
     "steps: given for 'cifar', which is not among the tasks digits"),
])
def test_bad_build_panel_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    assert main(["build-panel", str(tmp_path / "panel.sqlite"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "panel.sqlite").exists()


def test_a_panel_tuned_on_other_seeds_is_judged_on_its_score_rows_alone(tmp_path, capsys):
    panel = str(tmp_path / "panel.sqlite")
    build = ["build-panel", panel, "--rules", "sgd", "adam", "sign(m)", "--tasks", "digits,mnist1d", "--steps",
             "digits=20,mnist1d=10", "--lrs", "0.01,0.1", "--tune-seeds", "1", "--seeds", "2", "--seed", "5"]
    assert main(build) == 0 and capsys.readouterr().out
    with Store(panel, readonly=True) as store:
        rows = list(store.evaluations())
    tuning = [r for r in rows if r.stage == TRANSFER]
    scoring = [r for r in rows if r.stage == SCORE]
    assert {r.seed for r in tuning} == {5} and {r.seed for r in scoring} == {6, 7} and len(scoring) == 2 * 3 * 2
    tuned = {(r.task, r.fingerprint): r.evaluation for r in tuning}
    for row in scoring:  # each rule trains alone at the rate its tuning seed chose, for the budget of its task
        assert [p.lr for p in row.evaluation.per_lr] == [tuned_scores({5: tuned[row.task, row.fingerprint]})[0]]
        assert row.evaluation.steps == (20 if row.task == "digits" else 10) and row.evaluation.seed == row.seed
    read = read_panel(panel)
    assert read.seeds("digits") == [6, 7] and len(read.rules) == 3
    assert main(build) == 0 and "0 results computed" in capsys.readouterr().out  # resumable


def test_a_stopped_build_keeps_each_finished_rule_tuned_and_scored(tmp_path, monkeypatch):
    from optsearch.engine import panel as panel_module

    monkeypatch.setattr(panel_module, "STACKED_CHUNK", 1)  # digits is a stacked MLP: one rule at a time here
    path, rules = tmp_path / "panel.sqlite", ["sgd", "adam", "sign(m)"]
    kw = dict(tasks=["digits"], seeds=[1, 2], tune_seeds=[0], steps=10, lrs=[0.01, 0.1])
    def stop_after_the_first_rule(task, done, total):
        assert (task, done, total) == ("digits", 1, 3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        panel_module.build_panel(path, rules, on_result=stop_after_the_first_rule, **kw)
    with Store(path, readonly=True) as store:
        kept = [(r.rule, r.stage, r.seed) for r in store.evaluations()]
    sgd = str(resolve("sgd"))
    assert sorted(kept) == [(sgd, SCORE, 1), (sgd, SCORE, 2), (sgd, TRANSFER, 0)]
    assert panel_module.build_panel(path, rules, **kw) == 2 * 3  # the other two rules, tuned and scored


def test_the_committed_panel_holds_the_listed_rules_on_three_held_out_tasks_scored_on_fresh_seeds():
    folder = Path(__file__).parents[2] / "docs" / "panel"
    panel = read_panel(folder / "panel.sqlite")
    listed = {resolve(line).fingerprint for line in (folder / "rules.txt").read_text().splitlines() if line.strip()}
    assert panel.tasks == ["fashion_mnist_conv", "kjv_char_lstm", "kjv_transformer"]
    assert all(panel.seeds(task) == [1, 2, 3] for task in panel.tasks)  # seed 0 tuned the rates
    assert set(panel.rules) == listed and len(listed) == 49  # complete: every listed rule on every task
    assert all(sorted(panel.results[task][fp]) == [1, 2, 3] for task in panel.tasks for fp in listed)
    assert sorted(p.name for p in folder.iterdir() if "sqlite" in p.name) == ["panel.sqlite"]  # no -wal, -shm
