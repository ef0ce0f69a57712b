"""A task file is the user's code: its `sys.exit` is an error named as such (exit 2, before: optsearch ended with
the file's own exit code and no message), Ctrl-C in it still interrupts, and it may import modules beside it, in
this process and in process workers (before: ModuleNotFoundError)."""

import sys

import pytest

import optsearch
from optsearch.cli import main
from optsearch.tasks import TaskError, get_task

HELPER = """import torch
from torch import nn

def splits():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return (x[:40], y[:40]), (x[40:50], y[40:50]), (x[50:], y[50:])

def model():
    return nn.Linear(4, 2)
"""

TASK = """import optsearch
from {helper} import model, splits

def make_task():
    train, val, test = splits()
    return optsearch.Task.from_tensors("{name}", model, train=train, val=val, test=test, steps=3, batch_size=8)
"""


@pytest.mark.parametrize("body, doing", [
    ("import sys\nsys.exit(3)\n", "importing .*exiting_task.py"),
    ("import sys\n\ndef make_task():\n    sys.exit(3)\n", r"make_task\(\)"),
])
def test_a_task_file_that_exits_is_one_line_exit_2(tmp_path, capsys, body, doing):
    (tmp_path / "exiting_task.py").write_text(body)
    assert main(["evaluate", "adam", "--task", f"{tmp_path}/exiting_task.py:make_task"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("optsearch: error: task: task spec ")
    with pytest.raises(TaskError, match=rf"{doing} exited \(sys.exit\(3\)\); a task file must not exit"):
        get_task(f"{tmp_path}/exiting_task.py:make_task")


def test_ctrl_c_in_a_task_file_still_interrupts(tmp_path):
    (tmp_path / "slow_task.py").write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        get_task(f"{tmp_path}/slow_task.py:make_task")


def test_a_task_file_imports_a_module_beside_it_here_and_in_process_workers(tmp_path):
    (tmp_path / "edges_sibling_helper.py").write_text(HELPER)
    (tmp_path / "sibling_task.py").write_text(TASK.format(helper="edges_sibling_helper", name="sibling"))
    spec = f"{tmp_path}/sibling_task.py:make_task"
    path = list(sys.path)
    assert get_task(spec).name == "sibling"
    assert sys.path == path  # the folder was on the path only while importing
    result = optsearch.search(task=spec, strategy="random", budget=2, lrs=[0.1], executor="process", workers=1,
                              baselines=("adam",))
    assert result.n_unique >= 2 and {t.status for t in result.trials} == {"ok"}
