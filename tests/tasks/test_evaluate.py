import importlib
import json

import pytest

from optsearch.dsl import parse
from optsearch.tasks import Evaluation, evaluate, task_table, text
from optsearch.tasks import population as pop

FAST = dict(task="digits", steps=40, batch_size=32)
STOCHASTIC = "drop(g, 0.3) * exp(sign(g) * sign(m))"


def test_one_rule_gives_one_evaluation_with_the_best_validation_accuracy_as_reward():
    ev = evaluate("adam", lrs=[1e-3, 1e-2, 1e-1], **FAST)
    assert isinstance(ev, Evaluation) and ev.status == "ok" and ev.reason is None
    assert [p.lr for p in ev.per_lr] == [1e-3, 1e-2, 1e-1]
    best = max(ev.per_lr, key=lambda p: p.val_acc)
    assert ev.reward == best.val_acc > 0.5 and ev.best_lr == best.lr
    assert [c.step for c in ev.curve] == [8, 16, 24, 32, 40] and ev.curve[-1].val_acc == ev.reward
    assert all(0 <= p.test_acc <= 1 and p.loss > 0 and not p.diverged for p in ev.per_lr)


def test_evaluation_round_trips_through_json():
    ev = evaluate(["sgd"], lrs=[0.1], **FAST)[0]
    assert Evaluation.from_dict(json.loads(ev.to_json())) == ev


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_rewards_do_not_depend_on_how_rules_are_grouped_into_calls(precision):
    rules = ["adam", "g", STOCHASTIC, "ld * g"]
    kw = dict(task="mnist1d", steps=30, lrs=[1e-2, 1e-1], precision=precision)
    together = evaluate(rules, **kw)
    apart = [evaluate(rules[0], **kw)] + evaluate(rules[:0:-1], **kw)[::-1]
    assert [e.per_lr for e in together] == [e.per_lr for e in apart]


def test_the_seed_changes_a_stochastic_rules_result():
    a, b = (evaluate(STOCHASTIC, lrs=[0.1], seed=s, **FAST) for s in (0, 1))
    assert a.per_lr != b.per_lr


def test_a_diverging_member_is_frozen_and_poisons_nobody():
    alone = evaluate("adam", lrs=[1e-2], **FAST)
    explode, adam = evaluate(["exp(exp(exp(2))) * g", "adam"], lrs=[1e-2, 1e4], **FAST)  # type: ignore[misc]
    assert adam.per_lr[0] == alone.per_lr[0]
    assert explode.status == "diverged" and explode.reward == 0.0 and "diverged" in explode.reason
    assert all(p.diverged and p.loss is None and p.val_acc == 0 for p in explode.per_lr)
    assert adam.per_lr[1].diverged or adam.per_lr[1].val_acc < 0.3  # lr 1e4 for Adam


def test_a_rule_that_fails_is_invalid_and_the_others_carry_on(monkeypatch):
    real = pop.compute_update
    fails = parse("m")

    def compute_update(rule, *args):
        if rule == fails:
            raise RuntimeError("boom")
        return real(rule, *args)

    alone = evaluate("g", lrs=[0.1], **FAST)
    monkeypatch.setattr(pop, "compute_update", compute_update)
    bad_text, failing, ok = evaluate(["g *", "m", "g"], lrs=[0.1], **FAST)
    assert bad_text.status == failing.status == "invalid"
    assert bad_text.rule == "g *" and "RuleError" in bad_text.reason
    assert failing.reason == "RuntimeError: boom" and failing.reward == 0.0
    assert ok.per_lr == alone.per_lr


def test_equal_rules_train_once_and_get_the_same_result(monkeypatch):
    trained = []
    module = importlib.import_module("optsearch.tasks.evaluate")  # the package's `evaluate` is the function
    real = module.train_stacked
    monkeypatch.setattr(module, "train_stacked", lambda sizes, data, runs, *a, **kw: trained.extend(runs) or real(
        sizes, data, runs, *a, **kw))
    a, b, c = evaluate(["g * m", "(g) * (m)", parse("g*m")], lrs=[0.01], **FAST)
    assert a == b == c and a.rule == "g * m" and len(trained) == 1


def test_decay_rules_get_total_steps():
    ev = evaluate("ld * g", lrs=[0.1], **FAST)
    assert ev.status == "ok" and ev.per_lr != evaluate("g", lrs=[0.1], **FAST).per_lr


@pytest.mark.parametrize("bf16", [False, True])
def test_convnet_tasks_train_members_one_by_one(cifar_dir, monkeypatch, bf16):
    monkeypatch.setattr(importlib.import_module("optsearch.tasks.evaluate"), "fast_bf16", lambda device: bf16)
    evs = evaluate(["adam", "exp(exp(exp(2))) * g"], task="cifar10_conv", data_dir=cifar_dir, steps=4, batch_size=10,
                   lrs=[1e-3, 1e4])
    assert evs[0].status == "ok" and len(evs[0].curve) == 4 and evs[0].per_lr[0].loss > 0
    assert evs[1].status == "diverged"


def test_fashion_mnist_reads_a_user_data_dir(fashion_dir):
    ev = evaluate("sgd", task="fashion_mnist_conv", data_dir=fashion_dir, steps=3, batch_size=30, lrs=[0.1])
    assert ev.status == "ok" and ev.steps == 3


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of mnist1d"):
        evaluate("g", task="nope")
    with pytest.raises(ValueError, match="lrs"):
        evaluate("g", lrs=[], **FAST)
    with pytest.raises(ValueError, match="batch_size=5000 exceeds"):
        evaluate("g", task="digits", batch_size=5000)
    with pytest.raises(ValueError, match="precision: got 'fp8'; allowed: auto, bf16, fp32"):
        evaluate("g", precision="fp8", **FAST)


def test_task_table_lists_every_task_its_metric_budgets_and_whether_its_data_is_here(cifar_dir):
    rows = {r["name"]: r for r in task_table()}
    assert list(rows)[:8] == ["mnist1d_large", "mnist1d", "digits", "fashion_mnist_conv", "fashion_mnist_resnet",
                              "cifar10_conv", "cifar10_resnet", "kjv_char_lstm"]
    assert rows["mnist1d"]["data present"] == "yes" and rows["cifar10_conv"]["data present"] == "no"
    assert {r["name"]: r for r in task_table(cifar_dir)}["cifar10_conv"]["data present"] == "yes"
    assert rows["mnist1d"]["train / val / test"] == "3200 / 800 / 1000"
    assert rows["mnist1d_large"]["train / val / test"] == "24000 / 8000 / 8000"
    assert rows["mnist1d"]["search (steps×batch)"] == "1000×128" and rows["mnist1d"]["benchmark (epochs×batch)"]
    assert (rows["kjv_char_lstm"]["metric"], rows["kjv_char_lstm"]["reward"]) == ("perplexity", "1/perplexity")


@pytest.mark.slow
def test_default_mnist1d_budget_reaches_the_known_accuracy():
    ev = evaluate("adam", task="mnist1d")
    assert ev.status == "ok" and ev.reward > 0.6


def test_progress_counts_every_member_step():
    calls = []
    evaluate(["g", "adam"], lrs=[0.01, 0.1], progress=lambda done, total: calls.append((done, total)), **FAST)
    assert calls[-1] == (4 * FAST["steps"], 4 * FAST["steps"])
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_resnet_tasks_evaluate_like_the_convnet(fashion_dir):
    ev = evaluate("adam", task="fashion_mnist_resnet", data_dir=fashion_dir, steps=2, batch_size=30, lrs=[1e-3])
    assert ev.status == "ok" and 0 <= ev.reward <= 1 and len(ev.curve) == 2


@pytest.mark.skipif(not text.BIBLE_DATA.exists(), reason="Debian packages bible-kjv and bible-kjv-text are missing")
def test_the_language_task_evaluates_with_reward_one_over_perplexity():
    ev = evaluate("adam", task="kjv_char_lstm", steps=2, lrs=[1e-2])
    assert ev.status == "ok" and 1 / 256 < ev.reward < 1  # trained 2 steps: near a uniform guess, not below it
