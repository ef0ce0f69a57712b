"""Learning-rate guidance: the lr stored results picked per (rule, task), its ratio to Adam's, and what
`optsearch show` prints from the committed file."""

import json

import pytest

from optsearch.cli import main
from optsearch.tasks.results import Evaluation, LrResult
from optsearch.transfer.guidance import (
    describe,
    evaluations_as_benchmark,
    guidance_document,
    load_guidance,
    picks_from_benchmark,
    rule_key,
)
from optsearch.transfer.results import BenchmarkResult
from optsearch.transfer.train import Epoch, Run

CONFIG = {"steps_per_run": 30, "batch_size": 10, "lrs": [0.001, 0.01, 0.1, 1.0], "seeds": 2}


def run(optimizer: str, lr: float, seed: int, vals: list[float], diverged: bool = False) -> Run:
    return Run(optimizer, lr, seed, [Epoch(i + 1, 1.0, v, v) for i, v in enumerate(vals)], diverged)


def constructed() -> BenchmarkResult:
    """Adam is best at 0.01; powersign's single best run is at 1.0, but a seed diverged there, so 0.1 is picked;
    sgd's best mean over seeds (of each run's best epoch) is at 1.0 though one seed alone is better at 0.1."""
    runs = [run("adam", 0.001, s, [0.5, 0.6]) for s in (0, 1)]
    runs += [run("adam", 0.01, s, [0.7, v]) for s, v in ((0, 0.8), (1, 0.75))]
    runs += [run("powersign", 0.1, s, [0.7]) for s in (0, 1)]
    runs += [run("powersign", 1.0, 0, [0.9]), run("powersign", 1.0, 1, [], diverged=True)]
    runs += [run("sgd", 0.1, 0, [0.95]), run("sgd", 0.1, 1, [0.4])]
    runs += [run("sgd", 1.0, 0, [0.6, 0.8]), run("sgd", 1.0, 1, [0.7])]
    return BenchmarkResult("toy", "accuracy", False, CONFIG, runs)


def test_the_benchmark_selection_picks_each_rules_lr_and_its_ratio_to_adams():
    picks = {p.rule: p for p in picks_from_benchmark(constructed())}
    assert set(picks) == {"adam", "g * exp(sign(g) * sign(m))", "g"}  # filed under the rule, not the name
    adam, power, sgd = picks["adam"], picks[rule_key("powersign")], picks["g"]
    assert (adam.lr, adam.ratio, adam.score) == (0.01, 1.0, pytest.approx(0.775))
    assert (power.lr, power.ratio, power.diverged, power.adam_lr) == (0.1, 10.0, 0, 0.01)
    assert (sgd.lr, sgd.ratio, sgd.score) == (1.0, 100.0, pytest.approx(0.75))
    assert sgd.budget == "30 steps of batch 10" and sgd.seeds == 2 and sgd.lrs == (0.001, 0.01, 0.1, 1.0)


def test_without_adam_alongside_there_is_an_lr_but_no_ratio():
    result = constructed()
    result.runs = [r for r in result.runs if r.optimizer != "adam"]
    assert all(p.ratio is None and p.adam_lr is None for p in picks_from_benchmark(result))


def evaluation(rule: str, seed: int, vals: dict[float, float | None]) -> Evaluation:
    per_lr = [LrResult(lr, 0.0, 0.0, None, 5) if v is None else LrResult(lr, v, v, 0.5) for lr, v in vals.items()]
    return Evaluation(rule, "mnist1d", max(v or 0 for v in vals.values()), "ok", per_lr=per_lr, steps=40,
                      batch_size=16, seed=seed)


def test_evaluations_over_seeds_go_through_the_same_selection():
    evals = [evaluation("adam", 0, {0.01: 0.6, 0.1: 0.5}), evaluation("adam", 1, {0.01: 0.6, 0.1: 0.5}),
             # best on one seed at 1.0, but it diverged on the other: 0.1 is picked
             evaluation("g", 0, {0.1: 0.5, 1.0: 0.9}), evaluation("g", 1, {0.1: 0.55, 1.0: None}),
             evaluation("g * m", 0, {0.1: None, 1.0: None}), evaluation("g * m", 1, {0.1: None, 1.0: None})]
    result = evaluations_as_benchmark([*evals, evaluation("g", 1, {0.1: 0.0, 1.0: 0.0})])  # a repeat counts once
    assert result.config == {"steps_per_run": 40, "batch_size": 16, "lrs": [0.01, 0.1, 1.0], "seeds": 2}
    picks = {p.rule: p for p in picks_from_benchmark(result)}
    assert (picks["g"].lr, picks["g"].ratio, picks["g"].score) == (0.1, 10.0, pytest.approx(0.525))
    assert picks["g * m"].diverged == 2  # everything diverged: reported as such, not hidden
    with pytest.raises(ValueError, match="one task and budget"):
        evaluations_as_benchmark([*evals, Evaluation("g", "digits", 0.5, "ok", steps=40, batch_size=16)])


def test_a_document_round_trips_and_refuses_a_rule_measured_twice_on_a_task(tmp_path):
    picks = picks_from_benchmark(constructed())
    path = tmp_path / "guidance.json"
    path.write_text(json.dumps(guidance_document(picks, {"toy": "constructed"})))
    assert {p for ps in load_guidance(path).values() for p in ps} == set(picks)
    with pytest.raises(ValueError, match="measured twice"):
        guidance_document([*picks, picks[0]], {})


def test_describe_spans_tasks_and_flags_a_pick_at_the_grid_edge():
    picks = {p.rule: p for p in picks_from_benchmark(constructed())}
    lines = describe("sgd", [picks["g"]])
    assert lines[0] == "on toy sgd's best lr was 100× Adam's (1 vs 0.01)"
    assert "grid's edge" in lines[1] and "30 steps of batch 10, 2 seeds, lr grid 0.001..1" in lines[1]
    assert describe("nothing", []) == []


def show(rule: str, capsys) -> str:
    assert main(["show", rule]) == 0
    return capsys.readouterr().out


def test_show_powersign_prints_the_committed_ratio_to_adam(capsys):
    committed = load_guidance()[rule_key("powersign")]
    assert {"mnist1d", "digits", "fashion_mnist_conv"} <= {p.task for p in committed}
    out = show("powersign", capsys)
    ratios = sorted(p.ratio for p in committed)
    span = f"{ratios[0]:g}×" if ratios[0] == ratios[-1] else f"{ratios[0]:g}–{ratios[-1]:g}×"
    assert f"powersign's best lr was {span} Adam's" in out
    for p in committed:
        assert f"{p.task}: lr {p.lr:g} = {p.ratio:g}× Adam's {p.adam_lr:g}" in out


def test_show_prints_no_guidance_for_a_rule_never_measured(capsys):
    out = show("g * m + sign(v)", capsys)
    assert "rule" in out and "learning rate" not in out and "Adam's" not in out
