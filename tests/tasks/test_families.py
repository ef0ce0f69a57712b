"""The cheap members of other families (tiny ConvNet, tiny LSTM, small transformer), the fixed validation subset
of intermediate checkpoints, and the per-task precision of "auto"."""

import dataclasses
import importlib

import pytest
import torch

from optsearch.tasks import Settings, evaluate
from optsearch.tasks.evaluate import halving_policy
from optsearch.tasks.registry import Task, TaskError, get_task, load_splits

NEW = ("fashion_tiny_conv", "kjv_tiny_lstm", "kjv_transformer")
TINY = dict(steps=5, batch_size=8, lrs=[1e-2])
STOCHASTIC = "drop(g, 0.3) * exp(sign(g) * sign(m))"


def needs_data(name):
    return pytest.mark.skipif(not get_task(name).data_present(), reason=f"{name}'s data is not installed")


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_data(n)) for n in NEW])
def test_each_new_task_trains_and_scores_in_evaluate(name):
    task = get_task(name)
    ev = evaluate("adam", task=name, **TINY)
    assert ev.status == "ok" and len(ev.curve) == 5 and 0 < ev.reward <= 1
    assert task.checkpoint_val < task.sizes[1] == len(load_splits(name).y_val)


def test_the_validation_subset_is_fixed_sorted_and_of_the_asked_size():
    data = load_splits("digits")
    x, y = data.val_subset(100)
    again = data.val_subset(100)
    assert len(y) == 100 and torch.equal(x, again[0]) and torch.equal(y, again[1])
    rows = [next(i for i in range(len(data.y_val)) if torch.equal(data.x_val[i], row)) for row in x]
    assert rows == sorted(rows) and len(set(rows)) == 100
    assert data.val_subset(None)[0] is data.x_val and data.val_subset(10_000)[0] is data.x_val


RULES = ["adam", "-g", "sign(g)", "exp(exp(exp(2))) * g"]  # good, hopeless, good, diverges
DIGITS = dict(steps=40, batch_size=32, lrs=[1e-3, 1e-2, 1e-1])


def with_subset(name, n):
    return dataclasses.replace(get_task(name), name=f"{name}_val{n}", checkpoint_val=n)


def test_a_subset_scores_only_the_intermediate_checkpoints_the_final_score_is_the_full_splits():
    full = evaluate(RULES, task="digits", **DIGITS)
    subset = evaluate(RULES, task=with_subset("digits", 150), **DIGITS)
    pairs = [(p, q) for e, f in zip(subset, full, strict=True) for p, q in zip(e.per_lr, f.per_lr, strict=True)]
    assert any(p.curve[:-1] != q.curve[:-1] for p, q in pairs)
    for e, f in zip(subset, full, strict=True):
        assert [(p.curve[-1], p.val_acc, p.test_acc, p.loss, p.diverged_at) for p in e.per_lr] == \
            [(p.curve[-1], p.val_acc, p.test_acc, p.loss, p.diverged_at) for p in f.per_lr]


def test_halving_decides_on_the_subsets_scores():
    task = with_subset("digits", 150)
    full, halved = (evaluate(RULES, task=task, fidelity=f, **DIGITS) for f in ("full", "halving"))
    policy = halving_policy(Settings(task=task, **DIGITS, fidelity="halving").resolved())
    first = min(policy.floors)
    assert policy != halving_policy(Settings(task="digits", **DIGITS, fidelity="halving").resolved())
    for f, h in zip(full, halved, strict=True):
        live = [p for p in f.per_lr if not p.diverged]
        keep = policy.keep(first, [p.curve[0] for p in live])  # the subset's scores at the first rung
        stopped = [q.stopped_at == first for p, q in zip(f.per_lr, h.per_lr, strict=True) if not p.diverged]
        assert stopped == [not k for k in keep]


@needs_data("fashion_tiny_conv")
def test_a_sequential_tasks_subset_changes_no_final_result():
    full_split = dataclasses.replace(get_task("fashion_tiny_conv"), name="fashion_tiny_conv_fullval",
                                     checkpoint_val=None)
    subset, full = (evaluate("adam", task=t, **TINY).per_lr[0] for t in ("fashion_tiny_conv", full_split))
    assert (subset.val_acc, subset.test_acc, subset.loss) == (full.val_acc, full.test_acc, full.loss)
    assert subset.curve[:-1] != full.curve[:-1]


@needs_data("fashion_tiny_conv")
def test_rewards_on_a_new_task_do_not_depend_on_how_rules_are_grouped():
    kw = dict(task="fashion_tiny_conv", steps=4, batch_size=16, lrs=[1e-1])
    together = evaluate(["adam", STOCHASTIC], **kw)
    apart = [evaluate("adam", **kw), evaluate(STOCHASTIC, **kw)]
    assert [e.per_lr for e in together] == [e.per_lr for e in apart]


def tiny_conv_task(bf16):
    from optsearch.tasks.models import ConvNet

    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8, generator=g), torch.randint(0, 4, (60,), generator=g)
    task = Task.from_tensors(f"tiny_conv_bf16_{bf16}", lambda: ConvNet((0.3,), (0.2,), 8, classes=4, width=(4, 8)),
                             train=(x[:40], y[:40]), val=(x[40:50], y[40:50]), test=(x[50:], y[50:]), steps=4,
                             batch_size=8)
    return dataclasses.replace(task, bf16=bf16)


@pytest.mark.parametrize("allowed", [True, False])
def test_precision_auto_uses_bf16_only_where_the_task_allows_it(monkeypatch, allowed):
    monkeypatch.setattr(importlib.import_module("optsearch.tasks.evaluate"), "fast_bf16", lambda device: True)
    task = tiny_conv_task(allowed)
    auto, bf16, fp32 = (evaluate("adam", task=task, lrs=[1e-2], precision=p).per_lr for p in ("auto", "bf16", "fp32"))
    assert bf16 != fp32 and auto == (bf16 if allowed else fp32)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("checkpoint_val", 0, "checkpoint_val: got 0; allowed: a whole number >= 1"),
    ("bf16", "yes", "bf16: got 'yes'; allowed: True or False"),
])
def test_bad_task_fields_are_refused(field, value, message):
    with pytest.raises(TaskError, match=message):
        dataclasses.replace(get_task("digits"), **{field: value})
