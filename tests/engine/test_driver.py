import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from optsearch.dsl import parse
from optsearch.engine import ConfigMismatch, Store, search

TARGET = parse("g * exp(sign(g) * sign(m))").tokens


def matched(rule):
    """Synthetic reward: fraction of the target's tokens matched position by position."""
    return sum(a == b for a, b in zip(rule.tokens, TARGET, strict=False)) / len(TARGET)


class Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, rule):
        self.calls.append(rule.fingerprint)
        return matched(rule)


def test_budget_counts_unique_evaluations_and_nothing_is_trained_twice(tmp_path):
    objective = Counting()
    result = search(objective=objective, strategy="random", budget=40, seed=1, db=tmp_path / "s.sqlite")
    assert result.stopped == "budget"
    assert result.n_unique == 40 == len(objective.calls) == len(set(objective.calls))
    assert result.n_samples >= result.n_unique
    with Store(tmp_path / "s.sqlite") as store:
        kinds = [s.kind for s in store.samples()]
        assert kinds.count("new") == 40
        assert store.count_samples() == result.n_samples
        assert all(s.reward == s.reward for s in store.samples())  # no NaN rewards stored


def test_rejected_rules_are_stored_but_not_evaluated(tmp_path):
    objective = Counting()
    search(objective=objective, strategy="random", budget=30, seed=2, db=tmp_path / "s.sqlite")
    with Store(tmp_path / "s.sqlite") as store:
        rejected = [t for t in store.trials() if t.status == "rejected"]
        assert rejected, "random sampling should hit rules that ignore the gradient"
        assert not {t.fingerprint for t in rejected} & set(objective.calls)
        assert all(t.reason for t in rejected)


def test_resume_continues_to_the_budget_without_rerunning(tmp_path):
    db = tmp_path / "s.sqlite"
    first = Counting()
    search(objective=first, strategy="ppo", budget=20, seed=3, db=db)
    with Store(db) as store:
        before = {t.fingerprint: (t.id, t.reward) for t in store.trials()}
    second = Counting()
    result = search(objective=second, strategy="ppo", budget=35, seed=3, db=db)
    assert result.n_unique == 35
    assert len(second.calls) == 15 and not set(second.calls) & set(first.calls)
    with Store(db) as store:
        after = {t.fingerprint: (t.id, t.reward) for t in store.trials()}
    assert all(after[fp] == v for fp, v in before.items())


def test_a_db_from_another_config_refuses_to_resume(tmp_path):
    db = tmp_path / "s.sqlite"
    search(objective=matched, strategy="random", budget=5, seed=0, db=db)
    with pytest.raises(ConfigMismatch, match="strategy: db has 'random', this search has 'evolution'"):
        search(objective=matched, strategy="evolution", budget=10, seed=0, db=db)


def test_sample_cap_stops_a_collapsed_search_and_keeps_its_trials(tmp_path):
    result = search(objective=matched, strategy="random", budget=1000, seed=0, max_samples=50, db=tmp_path / "s")
    assert result.stopped == "sample cap"
    assert 0 < result.n_unique < 1000
    assert result.n_samples >= 50


def test_objective_errors_and_nans_are_results_not_crashes():
    def fragile(rule):
        if "m" in rule.operands:
            raise RuntimeError("boom")
        return float("nan") if "v" in rule.operands else 1.0

    result = search(objective=fragile, strategy="random", budget=30, seed=0)
    statuses = {t.status for t in result.trials}
    assert {"failed", "diverged", "ok"} <= statuses
    assert all(t.reason for t in result.trials if t.status != "ok")


class BrokenExecutor:
    workers = 2

    def submit(self, fn, arg):
        future = cf.Future()
        future.set_exception(RuntimeError("worker died"))
        return future

    def close(self):
        pass


def test_a_failing_batch_is_recorded_as_failed_never_dropped(tmp_path):
    # no baselines: with them, an executor that fails everything stops the search first (test_search_input)
    result = search(task="mnist1d", strategy="random", budget=6, executor=BrokenExecutor(), seed=0, baselines=())
    assert result.n_unique == 6
    assert all(t.status == "failed" and "worker died" in t.reason for t in result.trials)


def test_same_seed_same_search():
    a = search(objective=matched, strategy="evolution", budget=30, seed=5)
    b = search(objective=matched, strategy="evolution", budget=30, seed=5)
    assert [t.rule for t in a.trials] == [t.rule for t in b.trials]


SCRIPT = """
import sys, time
from optsearch.engine import search

def slow(rule):
    with open(sys.argv[2], "a") as f:
        f.write(rule.fingerprint + "\\n")
    time.sleep(0.02)
    return len(rule.operands) / 10

search(objective=slow, strategy="ppo", budget=int(sys.argv[3]), seed=7, db=sys.argv[1])
"""


def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path, wait_for_trials):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    db, log = tmp_path / "s.sqlite", tmp_path / "calls.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(log), "200"])
    try:
        wait_for_trials(db, 25)
    finally:  # killed mid-run as planned, or at once if the wait failed: the search never outlives the test
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Store(db) as store:
        kept = {t.fingerprint for t in store.trials() if t.status != "rejected"}
    assert 25 <= len(kept) < 200
    subprocess.run([sys.executable, str(script), str(db), str(log), "60"], check=True, timeout=120)
    with Store(db) as store:
        final = {t.fingerprint for t in store.trials() if t.status != "rejected"}
    assert kept <= final and len(final) == max(60, len(kept))
    calls = log.read_text().split()
    finished_twice = [fp for fp in set(calls) if calls.count(fp) > 1 and fp in kept]
    assert not finished_twice


class Scripted:
    """Asks the same three rules (two of them one function) over and over; records what it is told."""

    def __init__(self, *args, **kwargs):
        self.rules = [parse("g * m"), parse("m * g"), parse("g")]
        self.told = []

    def ask(self, n):
        return [self.rules[i % 3] for i in range(n)]

    def tell(self, rules, rewards):
        self.told += [(str(r), w) for r, w in zip(rules, rewards, strict=True)]

    def state_dict(self):
        return {}


def test_duplicates_are_told_with_a_penalty_but_stored_unchanged(monkeypatch):
    import optsearch.engine.config as config

    strategy = Scripted()
    monkeypatch.setattr(config, "make_strategy", lambda *a, **k: strategy)
    result = search(objective=lambda rule: 0.5, strategy="scripted", budget=2, duplicate_penalty=0.25, batch=3,
                    max_samples=9)
    assert result.n_unique == 2 and {t.reward for t in result.trials} == {0.5}
    assert strategy.told[:3] == [("g * m", 0.5), ("m * g", 0.25), ("g", 0.5)]
    assert all(w == 0.25 for _, w in strategy.told[3:])


class Resumable(Scripted):
    def load_state_dict(self, state):
        pass


def test_a_count_based_penalty_grows_with_how_often_a_rule_was_sampled_across_a_resume(tmp_path, monkeypatch):
    import optsearch.engine.config as config

    db = tmp_path / "s.sqlite"
    first, second = Resumable(), Resumable()
    kw = dict(objective=lambda rule: 0.5, strategy="scripted", budget=3, duplicate_penalty=0.25, batch=3, db=db,
              penalty_mode="count")
    monkeypatch.setattr(config, "make_strategy", lambda *a, **k: first)
    search(max_samples=6, **kw)
    monkeypatch.setattr(config, "make_strategy", lambda *a, **k: second)
    search(max_samples=9, resume=True, **kw)
    # g*m and m*g are one function: its n-th sample loses 0.25 × (n - 1); g's second loses 0.25, its third 0.5
    assert [w for _, w in first.told] == [0.5, 0.25, 0.5, 0.0, -0.25, 0.25]
    assert [w for _, w in second.told] == [-0.5, -0.75, 0.0]
