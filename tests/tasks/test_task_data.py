"""Broken task data is named when the task is loaded (split and problem), never blamed on the rules: before, NaN
inputs marked every rule `diverged` and evaluate / search exited 0."""

import pytest
import torch
from torch import nn

from optsearch.cli import main
from optsearch.tasks import Splits, Task, TaskError, evaluate


def _splits(n_classes: int = 3) -> Splits:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, n_classes, (60,), generator=g)
    return Splits(x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:])


def _task(name: str, splits: Splits, metric: str = "accuracy", outputs: int = 3) -> Task:
    return Task(name, "test data", lambda _: splits, lambda: nn.Linear(4, outputs), steps=3, batch_size=8, epochs=1,
                benchmark_batch_size=8, metric=metric)


def _broken(field: str, change) -> Splits:
    s = _splits()
    parts = {k: getattr(s, k).clone() for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    parts[field] = change(parts[field])
    return Splits(**parts)


def _with(value: float):
    def change(t: torch.Tensor) -> torch.Tensor:
        t.view(-1)[3] = value
        return t
    return change


@pytest.mark.parametrize("field, change, message", [
    ("x_train", _with(float("nan")), "train split: 1 of the 160 input values are NaN or infinite"),
    ("x_val", _with(float("inf")), "validation split: 1 of the 40 input values are NaN or infinite"),
    ("y_test", lambda y: y.float(), "test split: targets are torch.float32; allowed: integer class labels"),
    ("y_train", _with(3), "train split: targets range from 0 to 3; allowed: class labels in \\[0, 3\\)"),
    ("y_val", _with(-1), "validation split: targets range from -1 to 2"),
    ("y_train", lambda y: y[:-1], "train split: 40 inputs and 39 targets; allowed: the same number \\(> 0\\)"),
    ("x_test", lambda x: x[:0], "test split: 0 inputs and 10 targets"),
])
def test_broken_data_is_one_error_naming_the_split_and_problem(field, change, message):
    with pytest.raises(TaskError, match=f"task broken_{field}: {message}"):
        evaluate("adam", task=_task(f"broken_{field}", _broken(field, change)), lrs=[0.01])


def test_regression_targets_may_be_any_finite_values_but_not_nan():
    s = _splits()
    values = Splits(s.x_train, torch.randn(40), s.x_val, torch.randn(10), s.x_test, torch.randn(10))
    assert evaluate("adam", task=_task("values", values, "mse", 1), lrs=[0.01]).status == "ok"
    nan = Splits(s.x_train, torch.randn(40), s.x_val, torch.randn(10), s.x_test, torch.full((10,), float("nan")))
    with pytest.raises(TaskError, match="task nan_values: test split: 10 of the 10 target values are NaN"):
        evaluate("adam", task=_task("nan_values", nan, "mse", 1), lrs=[0.01])


def test_a_load_that_returns_no_splits_is_named():
    with pytest.raises(TaskError, match="task no_splits: its load returned tuple; allowed: a Splits"):
        evaluate("adam", task=Task("no_splits", "", lambda _: (1, 2), lambda: nn.Linear(4, 3), 3, 8, 1, 8),
                 lrs=[0.01])


NAN_TASK = """import torch
from torch import nn
import optsearch

def make_task():
    x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
    x[5, 1] = float("nan")
    return optsearch.Task.from_tensors("nan_inputs", lambda: nn.Linear(4, 3), train=(x[:40], y[:40]),
                                       val=(x[40:50], y[40:50]), test=(x[50:], y[50:]), steps=3, batch_size=8)
"""


@pytest.mark.parametrize("command", [["evaluate", "adam", "--json", "out.json"],
                                     ["search", "--db", "out.json", "--budget", "2", "--strategy", "random"],
                                     ["search", "--db", "out.json", "--budget", "2", "--executor", "process"]])
def test_cli_exits_2_on_broken_task_data_before_writing_anything(tmp_path, monkeypatch, capsys, command):
    (tmp_path / "nan_task.py").write_text(NAN_TASK)
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--task", "nan_task.py:make_task", "--lrs", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err == "optsearch: error: task nan_inputs: train split: 1 of the 160 input values are NaN or infinite; " \
                  "allowed: finite numbers\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan_task.py"]
