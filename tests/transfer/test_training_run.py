import torch

from optsearch.optim import make_optimizer
from optsearch.transfer.train import Budget, train_run


def factory(name):
    return lambda params, lr, total_steps: make_optimizer(name, params, lr=lr, total_steps=total_steps)


def test_a_run_records_every_epoch_and_learns(image_task):
    splits = image_task.load(None)
    run = train_run(image_task, splits, "adam", factory("adam"), 1e-2, 0, Budget(epochs=3, batch_size=50))
    assert [e.epoch for e in run.epochs] == [1, 2, 3]
    assert not run.diverged
    assert run.epochs[-1].train_loss < run.epochs[0].train_loss
    assert run.epochs[-1].val > 0.5  # 4 classes: chance is 0.25


def test_the_seed_fixes_the_run(image_task):
    splits = image_task.load(None)
    budget = Budget(epochs=1, batch_size=50, steps_per_epoch=3)
    a, b = (train_run(image_task, splits, "sgd", factory("sgd"), 0.1, 7, budget) for _ in range(2))
    assert a.epochs == b.epochs


def test_steps_per_epoch_caps_an_epoch():
    assert Budget(epochs=1, batch_size=10).steps(95) == 9
    assert Budget(epochs=1, batch_size=10, steps_per_epoch=4).steps(95) == 4


def test_a_diverging_run_stops_and_says_so(image_task):
    splits = image_task.load(None)
    run = train_run(image_task, splits, "sgd", factory("sgd"), 1e12, 0, Budget(epochs=3, batch_size=50))
    assert run.diverged
    assert len(run.epochs) < 3


def test_language_task_reports_perplexity(text_task):
    splits = text_task.load(None)
    run = train_run(text_task, splits, "adam", factory("adam"), 1e-2, 0, Budget(epochs=2, batch_size=16))
    first, last = run.epochs[0].val, run.epochs[-1].val
    assert 1.0 < last < first < 256.0  # perplexity per byte: between certainty and a uniform guess
    assert torch.isfinite(torch.tensor(last))
