"""Your own task: a Task object, a `file.py:function` spec, or a `package.module:function` spec, usable by
evaluate, benchmark, search and the CLI. The README example is tests/tasks/example_task.py, run as a user would."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console
from sklearn.datasets import load_diabetes
from torch import nn

import optsearch
from optsearch.tasks import Task, TaskError, evaluate, get_task, register
from optsearch.tasks.models import CharLSTM
from optsearch.tasks.text import BYTES, byte_sequences
from optsearch.transfer import DEFAULT_LRS, BenchmarkResult, run_benchmark

EXAMPLE = Path(__file__).with_name("example_task.py")
SRC = Path(optsearch.__file__).parents[1]


def diabetes(steps: int = 30) -> Task:
    """scikit-learn's diabetes regression (442 patients, 10 features), targets scaled to unit variance."""
    x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
    x, y = x / x[:300].std(0), (y - y[:300].mean()) / y[:300].std()
    return Task.from_tensors("diabetes", lambda: nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1)),
                             train=(x[:300], y[:300]), val=(x[300:370], y[300:370]), test=(x[370:], y[370:]),
                             steps=steps, batch_size=30, metric="mse")


def write_spec(tmp_path: Path, body: str) -> str:
    path = tmp_path / "user_task.py"
    path.write_text("import optsearch\n\n" + body)
    return f"{path}:make_task"


def test_readme_example_runs_from_the_command_line(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "my_task.py")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "optsearch.cli", "evaluate", "adam", "--task", "my_task.py:make_task",
                           "--steps", "20", "--lrs", "1e-2"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "best validation accuracy" in proc.stdout and "│ ok" in proc.stdout


def test_a_task_object_works_with_evaluate_and_is_known_by_its_name_afterwards():
    task = diabetes()
    ev = evaluate("adam", task=task, lrs=[1e-5, 1e-2])
    assert ev.status == "ok" and ev.task == "diabetes" and get_task("diabetes") is task
    barely, trained = ev.per_lr
    assert 0 < barely.val_acc < trained.val_acc <= 1  # reward 1/(1+mse): lower error is a higher reward
    assert ev.reward == trained.val_acc and ev.best_lr == 1e-2


def test_perplexity_reward_is_one_over_perplexity_higher_is_better():
    s = byte_sequences("In the beginning God created the heaven and the earth. " * 60, seq_len=16)
    task = Task.from_tensors("tiny_text", lambda: CharLSTM(BYTES, embed=8, hidden=16), train=(s.x_train, s.y_train),
                             val=(s.x_val, s.y_val), test=(s.x_test, s.y_test), steps=20, batch_size=16,
                             metric="perplexity")
    ev = evaluate("adam", task=task, lrs=[1e-2])
    assert ev.status == "ok" and 1 / BYTES < ev.reward < 1  # better than a uniform guess over bytes


def test_a_file_spec_is_imported_once_and_its_path_made_absolute(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, "from optsearch.tasks import MLP, TASKS\n\ndef make_task():\n"
                      "    load = TASKS['digits'].load\n"
                      "    return optsearch.Task('my_digits', 'digits', load, MLP((64, 10)), 300, 64, 5, 64)\n")
    monkeypatch.chdir(tmp_path)
    relative = "user_task.py:make_task"
    assert get_task(relative) is get_task(spec)
    ev = evaluate("sgd", task=relative, steps=5, lrs=[0.1])
    assert ev.status == "ok" and ev.task == spec


@pytest.mark.parametrize(("body", "spec_suffix", "message"), [
    (None, "missing.py:make_task", "file .*missing.py not found"),
    ("def other():\n    pass\n", "user_task.py:make_task", "has no function 'make_task'; it defines: other"),
    ("def make_task():\n    return 42\n", "user_task.py:make_task", "returned int, not an optsearch Task"),
    ("def make_task():\n    raise RuntimeError('no data')\n", "user_task.py:make_task",
     r"make_task\(\) failed: RuntimeError: no data"),
    ("import nonexistent_pkg\n", "user_task.py:make_task", "importing .* failed: ModuleNotFoundError"),
    (None, "user_task.py:", "allowed: path/to/file.py:function or package.module:function"),
])
def test_a_bad_spec_is_a_one_line_error_naming_the_problem(tmp_path, body, spec_suffix, message):
    if body is not None:
        write_spec(tmp_path, body)
    with pytest.raises(TaskError, match=message) as info:
        get_task(f"{tmp_path}/{spec_suffix}")
    assert "\n" not in str(info.value)


def test_a_module_spec_imports_from_the_python_path(tmp_path, monkeypatch):
    package = tmp_path / "labtasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, package / "cancer.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_task("labtasks.cancer:make_task").name == "breast_cancer"
    with pytest.raises(TaskError, match="importing labtasks.nope failed: ModuleNotFoundError"):
        get_task("labtasks.nope:make_task")


def test_bad_task_fields_are_clear_errors():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    build = lambda: nn.Linear(2, 2)  # noqa: E731
    with pytest.raises(ValueError, match="unknown metric 'f1'; allowed: accuracy, perplexity, mse"):
        Task.from_tensors("t", build, train=(x, y), val=(x, y), test=(x, y), steps=5, batch_size=2, metric="f1")
    with pytest.raises(TaskError, match="val: allowed: a pair"):
        Task.from_tensors("t", build, train=(x, y), val=(x, y[:3]), test=(x, y), steps=5, batch_size=2)
    with pytest.raises(TaskError, match="steps: got 0"):
        Task.from_tensors("t", build, train=(x, y), val=(x, y), test=(x, y), steps=0, batch_size=2)
    with pytest.raises(TaskError, match="task name"):
        Task.from_tensors("a:b", build, train=(x, y), val=(x, y), test=(x, y), steps=5, batch_size=2)
    with pytest.raises(TaskError, match="built-in task's"):
        register(Task.from_tensors("mnist1d", build, train=(x, y), val=(x, y), test=(x, y), steps=5, batch_size=2))


def test_benchmark_runs_a_search_proxy_and_a_spec_task():
    mnist = run_benchmark(["adam", "sgd"], "mnist1d", epochs=1, lrs=[1e-2], seeds=2, steps_per_epoch=3,
                          eval_size=100, console=Console(quiet=True))
    assert len(mnist.runs) == 4 and mnist.metric == "accuracy" and not mnist.lower_is_better
    assert all(0 < r.epochs[0].val <= 1 for r in mnist.runs)
    own = run_benchmark(["adam"], f"{EXAMPLE}:make_task", epochs=1, lrs=[1e-2], seeds=1, console=Console(quiet=True))
    assert own.task == "breast_cancer" and own.config["train_examples"] == 400


def test_regression_benchmark_reports_mse_lower_is_better():
    result = run_benchmark(["adam"], diabetes(), epochs=2, lrs=[1e-2], seeds=1, console=Console(quiet=True))
    assert result.metric == "mse" and result.lower_is_better
    first, last = (e.val for e in result.runs[0].epochs)
    assert 0 < last < first


def test_search_takes_a_task_object_inline():
    result = optsearch.search(task=diabetes(steps=5), strategy="random", budget=2, lrs=[1e-2], baselines=("adam",))
    assert result.n_unique >= 2 and all(0 <= t.reward <= 1 for t in result.trials)
    assert any(t.status == "ok" for t in result.trials)


README = SRC.parent / "README.md"


def readme_example() -> str:
    """The python block of the README's "Your own task" section."""
    section = README.read_text().split("\n## Your own task\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`optsearch ARGS` run as a user would, in a folder holding the README's my_task.py."""
    shutil.copy(EXAMPLE, tmp_path / "my_task.py")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "optsearch.cli", *args, "--threads", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_readme_shows_the_tested_example_file():
    assert readme_example() == EXAMPLE.read_text()


def test_a_process_pool_search_imports_the_task_file_in_its_workers(tmp_path):
    proc = run_cli(tmp_path, "search", "--task", "my_task.py:make_task", "--executor", "process", "--workers", "2",
                   "--budget", "4", "--steps", "20", "--db", "s.sqlite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        statuses = [s for (s,) in db.execute("SELECT status FROM trials")]
    assert len(statuses) >= 4 and "ok" in statuses and "failed" not in statuses


def test_a_benchmark_runs_on_the_task_file(tmp_path):
    proc = run_cli(tmp_path, "benchmark", "adam", "--task", "my_task.py:make_task", "--seeds", "1", "--epochs", "1",
                   "--out", "bench")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = BenchmarkResult.load(tmp_path / "bench")
    assert result.task == "breast_cancer" and len(result.runs) == len(DEFAULT_LRS)
    assert max(r.epochs[0].val for r in result.runs if r.epochs) > 0.8  # some lr learned the task
