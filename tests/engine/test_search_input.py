"""search() checks everything it is given before its db exists; a db that holds no work can be taken over."""

import json
import sqlite3
from pathlib import Path

import pytest
import torch
from torch import nn

import optsearch.engine.executors as executors
from optsearch.cli import main
from optsearch.dsl import parse
from optsearch.engine import BrokenTask, ConfigMismatch, SearchConfig, SearchExists, Store, Trial, search
from optsearch.engine.store import BASELINE
from optsearch.tasks import CurvePoint, Evaluation, LrResult, Settings, Status, Task

TINY = dict(task="digits", steps=20, lrs=[0.1], strategy="random", budget=2, seed=0)
DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"


def objective(rule):
    return len(rule.operands) / 10


@pytest.mark.parametrize("bad, message", [
    (dict(task="mnist1"), "task: unknown task 'mnist1'"),
    (dict(steps=0), "steps: got 0; allowed: a whole number >= 1"),
    (dict(steps=-5), "steps: got -5"),
    (dict(lrs=[float("nan")]), "lrs: got"),
    (dict(lrs=[1e-3, float("inf")]), "lrs: got"),
    (dict(batch_size=0), "batch_size: got 0"),
    (dict(device="cdua"), "device: got 'cdua'; allowed: cpu, cuda, cuda:N, mps"),
    (dict(strategy="rando"), "unknown strategy 'rando'; allowed: evolution, ppo, random, reinforce"),
    (dict(strategy="random", hidden=3), "strategy 'random' has no option hidden"),
    (dict(executor="foo"), "executor: got 'foo'; allowed: inline, process, ray"),
    (dict(workers=0), "workers: got 0"),
    (dict(budget=0), "budget: got 0"),
    (dict(groups=0), "groups: got 0"),
    (dict(batch=0), "batch: got 0"),
    (dict(duplicate_penalty=-1.0), "duplicate_penalty: got -1.0"),
    (dict(baselines=["adam", "foo(g)"]), "unknown function 'foo'"),
    (dict(objective=objective), "an objective search takes no task settings"),
    (dict(settings=Settings("digits")), "give settings or the keywords lrs, steps, task, not both"),
])
def test_bad_input_raises_naming_it_before_any_db_exists(tmp_path, bad, message):
    db = tmp_path / "x.sqlite"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        search(**{**TINY, **bad}, db=db)
    assert not db.exists()


def test_one_seed_drives_the_strategy_and_the_evaluation(tmp_path):
    with pytest.raises(ValueError, match="seed: got 1 for the strategy and 2 in the settings"):
        search(settings=Settings("digits", seed=2), seed=1, strategy="random", budget=1, db=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_db_path_that_cannot_hold_a_search_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(match="is a directory"):
        search(objective=objective, budget=1, db=tmp_path / "folder")
    for name, content in (("text.sqlite", b"hello\n"), ("garbage.sqlite", bytes(range(256)) * 8)):
        path = tmp_path / name
        path.write_bytes(content)
        for resume in (None, True):
            with pytest.raises(match=f"{name} is not an SQLite database"):
                search(objective=objective, budget=1, db=path, resume=resume)
        assert path.read_bytes() == content


def test_resume_needs_an_existing_db_and_a_fresh_search_refuses_one(tmp_path):
    db = tmp_path / "s.sqlite"
    with pytest.raises(match="no search at"):
        search(objective=objective, strategy="random", budget=3, db=db, resume=True)
    assert not db.exists()
    search(objective=objective, strategy="random", budget=3, db=db, resume=False)
    with pytest.raises(SearchExists):
        search(objective=objective, strategy="random", budget=5, db=db, resume=False)
    assert search(objective=objective, strategy="random", budget=5, db=db, resume=True).n_unique == 5


def test_a_db_without_trials_or_samples_is_taken_over_by_a_corrected_search(tmp_path):
    db = tmp_path / "s.sqlite"
    with Store(db) as store:  # what a start that failed after creating the db (before this fix) left behind
        store.set_meta("config", {**SearchConfig(None, "objective", "rando").to_json()})
    result = search(objective=objective, strategy="random", budget=3, db=db)
    assert result.n_unique == 3
    with Store(db) as store:
        assert store.get_meta("config")["strategy"] == "random"
    with pytest.raises(ConfigMismatch, match="strategy: db has 'random', this search has 'evolution'"):
        search(objective=objective, strategy="evolution", budget=3, db=db)


class Interrupting:
    """An executor that is interrupted (Ctrl-C) on its first job, which is a baseline's."""

    workers = 1

    def __init__(self):
        self.closed = False

    def submit(self, fn, arg):
        raise KeyboardInterrupt

    def close(self):
        self.closed = True


def test_ctrl_c_during_the_baselines_closes_the_executor_and_the_store(tmp_path, monkeypatch):
    ex = Interrupting()
    monkeypatch.setattr(executors, "make_executor", lambda *a, **k: ex)
    result = search(**TINY, executor="process", db=tmp_path / "s.sqlite")
    assert result.stopped == "interrupted" and ex.closed
    assert result.n_unique == 0


def wrong_width() -> Task:
    """Sound data, but a model that takes 5 features where there are 4: nothing, not even a baseline, can train on
    it (broken data itself is refused when the task is loaded: tests/tasks/test_task_data.py)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, 2, (60,), generator=g)
    return Task.from_tensors("wrong_width", lambda: nn.Linear(5, 2), train=(x[:40], y[:40]), val=(x[40:50], y[40:50]),
                             test=(x[50:], y[50:]), steps=5, batch_size=8)


def test_a_task_that_trains_no_baseline_stops_the_search_naming_why_and_stores_nothing(tmp_path):
    db = tmp_path / "s.sqlite"
    with pytest.raises(BrokenTask, match=r"^task wrong_width: every baseline came back invalid or failed \(adam: "
                       r"invalid: RuntimeError: mat1 and mat2 shapes cannot be multiplied .*\), so the task \(or its "
                       r"workers\) is broken, not the rules$"):
        search(task=wrong_width(), strategy="random", budget=5, db=db)
    with Store(db) as store:
        assert store.count_trials(evaluated_only=False) == 0 and store.count_samples() == 0


MAIN_ONLY = """
import multiprocessing
import torch
from torch import nn
import optsearch

def make_task():  # data that is only where the search was started, not in its workers
    if multiprocessing.current_process().name != "MainProcess":
        raise RuntimeError("no data in this worker")
    x, y = torch.randn(60, 4), torch.randint(0, 2, (60,))
    return optsearch.Task.from_tensors("main_only", lambda: nn.Linear(4, 2), train=(x[:40], y[:40]),
                                       val=(x[40:50], y[40:50]), test=(x[50:], y[50:]), steps=5, batch_size=8)
"""


def test_a_task_that_fails_only_in_workers_stops_the_search_in_one_line(tmp_path, capsys):
    task = tmp_path / "main_only.py"
    task.write_text(MAIN_ONLY)
    db = tmp_path / "s.sqlite"
    assert main(["search", "--task", f"{task}:make_task", "--strategy", "random", "--budget", "4", "--executor",
                 "process", "--workers", "1", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "every baseline came back invalid or failed (adam: failed: TaskError: " in err, err
    assert "no data in this worker" in err and err.count("\n") == 1, err


def test_trial_from_evaluation_keeps_every_fact_through_the_store(tmp_path):
    rule = parse("g * exp(sign(g) * sign(m))")
    ev = Evaluation(str(rule), "digits", 0.75, "ok", per_lr=[LrResult(0.1, 0.75, 0.7, 0.3, None, [0.5, 0.75])],
                    best_lr=0.1, curve=[CurvePoint(10, 0.5), CurvePoint(20, 0.75)], wall_time=1.5)
    trial = Trial.from_evaluation(ev, rule, "ppo", 3)
    assert trial.status is Status.OK and trial.fingerprint == rule.fingerprint
    with Store(tmp_path / "s.sqlite") as store:
        store.add_trial(trial)
        (stored,) = store.trials()
    assert stored == trial and stored.status is Status.OK
    assert stored.per_lr == [dict(lr=0.1, val_acc=0.75, test_acc=0.7, loss=0.3, diverged_at=None, curve=[0.5, 0.75],
                                  stopped_at=None)]
    assert stored.curve[1] == dict(step=20, val_acc=0.75) and stored.complexity == rule.complexity


@pytest.mark.parametrize("name", ["ppo-seed0.sqlite", "random-seed0.sqlite"])
def test_the_committed_dbs_old_flat_config_reads_as_the_same_search(name):
    db = sqlite3.connect(f"file:{DISCOVERY / name}?immutable=1", uri=True)  # committed: no -wal/-shm beside it
    (text,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    db.close()
    stored = json.loads(text)
    old = SearchConfig.from_json(stored)
    assert old.settings == Settings("mnist1d", steps=400) and old.strategy == name.split("-")[0]
    assert old.differences(SearchConfig(Settings("mnist1d", steps=400), strategy=old.strategy)) == []
    other = SearchConfig(Settings("mnist1d", steps=300, device="cuda"), strategy=old.strategy)
    assert other.differences(old) == ["steps: db has 400, this search has 300"]
    assert json.loads(json.dumps(old.to_json())).keys() >= stored.keys()


def test_baselines_are_stored_under_the_one_baseline_name(tmp_path):
    result = search(**TINY, db=tmp_path / "s.sqlite", baselines=["adam"])
    assert [t.rule for t in result.trials if t.strategy == BASELINE] == [str(parse("adam"))]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_device_this_machine_lacks_fails_before_the_db_unless_ray_workers_train(tmp_path):
    with pytest.raises(ValueError, match="device: 'cuda' asked for, but no CUDA GPU is visible here"):
        search(**{**TINY, "device": "cuda"}, db=tmp_path / "x.sqlite")
    assert not (tmp_path / "x.sqlite").exists()


def test_chunks_finished_before_ctrl_c_are_stored_not_lost(tmp_path):
    def stop_at_first_result(progress):
        if progress.done:
            raise KeyboardInterrupt

    common = dict(objective=objective, strategy="random", budget=40, batch=4, ahead=1)
    result = search(**common, db=tmp_path / "s.sqlite", on_progress=stop_at_first_result)
    assert result.stopped == "interrupted"
    full = search(**common, db=tmp_path / "full.sqlite")
    first_two_rounds = [t for t in full.trials if t.step in (0, 1)]  # both finished when the interrupt came
    assert len(first_two_rounds) > 4 and result.n_unique == len(first_two_rounds)


def test_max_samples_is_a_hard_cap_even_inside_one_batch(tmp_path):
    result = search(objective=objective, strategy="random", budget=100, batch=8, max_samples=3, db=tmp_path / "s")
    assert (result.stopped, result.n_samples, result.max_samples, result.n_duplicates) == ("sample cap", 3, 3, 0)


@pytest.mark.parametrize(("stored", "message"), [
    ("{not json", "its stored config is not valid JSON"),
    ('{"task": "digits"}', "its stored search config cannot be read (KeyError: 'seed')"),
])
def test_a_corrupt_stored_config_is_one_line_naming_the_db(tmp_path, capsys, stored, message):
    db = tmp_path / "s.sqlite"
    search(**TINY, db=db)
    connection = sqlite3.connect(db)
    with connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'config'", (stored,))
    connection.close()
    resume = ["search", "--task", "digits", "--steps", "20", "--lrs", "0.1", "--strategy", "random", "--budget", "3",
              "--db", str(db), "--resume"]
    for args in (resume, ["funnel", str(db), "--tasks", "digits"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{db}: {message}" in err and err.count("\n") == 1, err
