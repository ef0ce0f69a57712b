from pathlib import Path

import pytest

from optsearch.cli import build_parser, main
from optsearch.engine import ConfigMismatch, Store, search
from optsearch.engine.config import SEARCH_TASK, stored_config
from optsearch.engine.store import BASELINE
from optsearch.report import write_report
from optsearch.tasks import suite
from optsearch.tasks.registry import DEFAULT_TASK, get_task
from optsearch.tasks.results import Status
from optsearch.tasks.suite import SUITE_BASELINES, SUITES

SUITE = ["--task", "digits,mnist1d", "--steps", "10", "--lrs", "0.01,0.1", "--strategy", "random", "--batch", "3",
         "--fidelity", "full", "--no-extend-lrs"]
DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"
# stores written before suites existed (run 3 searched on a suite: its trials have per-task scores)
PRE_SUITE = [DISCOVERY / f"{n}.sqlite" for n in ("ppo-seed0", "random-seed0", "run2-ppo", "run2-random")]


def test_a_suite_search_keeps_per_task_scores_and_trains_its_baselines_once_across_a_resume(tmp_path, monkeypatch,
                                                                                           capsys):
    trained = []
    real = suite.reference_of
    monkeypatch.setattr(suite, "reference_of", lambda s: trained.append(s.task) or real(s))
    suite.cached_reference.cache_clear()
    db = str(tmp_path / "s.sqlite")
    assert main(["search", *SUITE, "--budget", "3", "--db", db]) == 0
    out = capsys.readouterr().out  # the per-task columns (the narrow test console wraps their titles)
    assert "mnist1d (raw" in out and "norm)" in out and trained == ["digits", "mnist1d"]
    suite.cached_reference.cache_clear()  # as a resume in a new process: only the db has them
    assert main(["search", *SUITE, "--budget", "5", "--db", db, "--resume"]) == 0
    assert trained == ["digits", "mnist1d"]  # the resume read them from the db
    with Store(db, readonly=True) as store:
        trials = [t for t in store.trials() if t.status != Status.REJECTED]
        rows = store.db.execute("SELECT COUNT(*) FROM suite_baselines").fetchone()[0]
    assert rows == 2 * len(SUITE_BASELINES) and len(trials) >= 5
    for t in trials:
        assert [s["task"] for s in t.scores] == ["digits", "mnist1d"]
        assert t.reward == pytest.approx(sum(s["normalized"] for s in t.scores) / 2) or t.status != "ok"
        assert all(s["best"] >= s["floor"] for s in t.scores)
    write_report(db, tmp_path / "report")
    assert "| digits (raw / norm) | mnist1d (raw / norm) |" in (tmp_path / "report" / "report.md").read_text()


def test_a_suite_search_does_not_resume_as_another_suite_or_aggregate(tmp_path):
    kw = dict(steps=10, lrs=[0.1], strategy="random", batch=1, fidelity="full", extend_lrs=False,
              db=tmp_path / "s.sqlite")
    search(task=["digits", "mnist1d"], budget=1, **kw)
    with pytest.raises(ConfigMismatch, match="aggregate: db has 'mean', this search has 'min'"):
        search(task=["digits", "mnist1d"], aggregate="min", budget=2, **kw)
    with pytest.raises(ConfigMismatch, match="suite"):
        search(task="digits", budget=2, **kw)


def test_an_aggregate_needs_a_suite():
    with pytest.raises(ValueError, match="aggregate: got 'min' for a single task"):
        search(task="digits", aggregate="min", budget=1)


@pytest.mark.parametrize("db", PRE_SUITE, ids=lambda p: p.name)
def test_the_committed_stores_still_read_with_no_per_task_scores(db):
    with Store(db, readonly=True) as store:
        trials = store.trials()
    assert trials and all(t.scores == [] for t in trials)


@pytest.mark.skipif(not all(get_task(t).data_present() for t in SUITES["transfer"]),
                    reason="the transfer suite's data (Fashion-MNIST, the KJV) is not installed")
def test_a_search_given_no_task_scores_rules_on_the_transfer_suite(tmp_path):
    result = search(strategy="random", budget=1, steps=3, batch_size=8, lrs=[0.01], fidelity="full",
                    extend_lrs=False, db=tmp_path / "s.sqlite")
    with Store(tmp_path / "s.sqlite", readonly=True) as store:
        assert stored_config(store).evaluation.tasks == SUITES["transfer"]
    found = [t for t in result.trials if t.strategy != "baseline" and t.status == "ok"]
    assert found and all([s["task"] for s in t.scores] == list(SUITES["transfer"]) for t in found)


def test_the_cli_searches_and_judges_proxies_on_the_search_default_and_evaluates_on_one_cheap_task():
    parser = build_parser()
    assert SEARCH_TASK == "transfer" and suite.suite_tasks(SEARCH_TASK) == SUITES["transfer"]
    assert parser.parse_args(["search"]).task == SEARCH_TASK
    assert parser.parse_args(["panel", "p.sqlite"]).task == SEARCH_TASK
    assert parser.parse_args(["evaluate", "adam"]).task == DEFAULT_TASK


def test_the_committed_suite_store_reads_with_each_trained_rules_per_task_scores():
    with Store(DISCOVERY / "run3-random.sqlite", readonly=True) as store:
        trials = [t for t in store.trials() if t.status != Status.REJECTED]
    assert len([t for t in trials if t.strategy != BASELINE]) == 1500
    for t in trials:
        assert [s["task"] for s in t.scores] == list(SUITES["transfer"])
        mean = sum(s["normalized"] for s in t.scores) / len(t.scores)
        assert t.status != Status.OK or t.reward == pytest.approx(mean)
