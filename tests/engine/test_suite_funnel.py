"""The funnel on a search over a task suite: stage 2 trains every rule on every suite task and scores each seed by
the suite reward, normalized against that seed's baselines; tiny real budgets (digits and mnist1d, 10 steps)."""

import dataclasses
import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from optsearch.cli import main
from optsearch.engine import Store, Trial, search
from optsearch.engine.config import stored_config
from optsearch.engine.funnel_analysis import analyze, load_funnel
from optsearch.engine.funnel_plan import (
    FUNNEL_BASELINES,
    PROXY,
    REFERENCE_RULES,
    FunnelConfig,
    Plan,
    make_plan,
    read_plan,
    settings_key,
)
from optsearch.engine.funnel_run import funnel
from optsearch.engine.funnel_text import ENTRY_HEADERS, entry_texts
from optsearch.optim.zoo import resolve
from optsearch.report import write_report
from optsearch.tasks import Settings, SettingsError
from optsearch.tasks.suite import LOWEST, MIN_SPREAD, SUITE_BASELINES, Suite

TASKS = ("digits", "mnist1d")
FUNNEL = dict(top=2, seeds=2, finalists=1, tasks=["digits"], tune_seeds=1, score_seeds=2, steps=10)
FIXED = len(FUNNEL_BASELINES) + len(REFERENCE_RULES)
DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A real random search on the suite digits,mnist1d (10 steps, 2 lrs, mean aggregate): 3 rules."""
    db = tmp_path_factory.mktemp("suite") / "s.sqlite"
    search(task=list(TASKS), strategy="random", budget=3, steps=10, lrs=[0.01, 0.1], fidelity="full",
           extend_lrs=False, batch=3, db=db, seed=0)
    return db


@pytest.fixture
def db(searched, tmp_path) -> Path:
    shutil.copy(searched, tmp_path / "s.sqlite")
    return tmp_path / "s.sqlite"


def test_stage_2_trains_every_rule_on_every_suite_task_and_seed_and_a_stopped_funnel_redoes_nothing(db):
    def stop_at_first_result(progress):
        if progress.computed:
            raise KeyboardInterrupt

    assert funnel(db, on_progress=stop_at_first_result, **FUNNEL).stopped == "interrupted"
    with Store(db, readonly=True) as store:
        kept = len(store.evaluations())
        searched = stored_config(store).evaluation
        trials = store.trials(order="reward")
    assert 0 < kept < 2 * 2 * (2 + FIXED)
    result = funnel(db, **FUNNEL)
    assert (result.stopped, result.reused) == ("done", kept)
    with Store(db, readonly=True) as store:
        rows = store.evaluations()
    assert result.computed == len(rows) - kept and len({r.key for r in rows}) == len(rows)
    top = [t.rule for t in trials if t.status == "ok" and t.strategy != "baseline"][:2]
    fixed = {str(resolve(name)) for name in (*FUNNEL_BASELINES, *REFERENCE_RULES)}
    proxy = [r for r in rows if r.stage == PROXY]
    # every rule on every task at every fresh seed, once, at that task's search settings (full fidelity, no skip)
    assert sorted((r.rule, r.task, r.seed) for r in proxy) == sorted(
        (rule, task, seed) for rule in {*top, *fixed} for task in TASKS for seed in (1, 2))
    keys = {s.task: settings_key(s.replace(fidelity="full")) for s in searched.settings}
    assert all(r.settings == keys[r.task] for r in proxy) and {r.evaluation.steps for r in proxy} == {10}
    assert result.proxy.task == "digits,mnist1d" and result.proxy.tasks == TASKS
    assert result.complete and result.proxy.results == result.proxy.expected == (2 + FIXED) * 2

    again = funnel(db, **FUNNEL)
    assert (again.computed, again.reused) == (0, len(rows))


def _tuned(rows) -> dict[tuple[str, str], dict[int, float]]:
    """(fingerprint, task) -> seed -> the test score at the lr with the best mean validation score over the seeds,
    from the stored stage-2 rows."""
    scores = {}
    for fp, task in {(r.fingerprint, r.task) for r in rows}:
        mine = {r.seed: {p.lr: p for p in r.evaluation.per_lr} for r in rows if (r.fingerprint, r.task) == (fp, task)}
        best = max(next(iter(mine.values())), key=lambda lr: np.mean([m[lr].val_acc for m in mine.values()]))
        scores[fp, task] = {seed: m[best].test_acc for seed, m in mine.items()}
    return scores


def _norm(scores, fp: str, task: str, seed: int, baseline_seed: int | None = None) -> float:
    """`fp`'s score on `task` at `seed` normalized against the suite baselines' at `baseline_seed` (or `seed`)."""
    base = [scores[resolve(name).fingerprint, task][baseline_seed or seed] for name in SUITE_BASELINES]
    return max(LOWEST, (scores[fp, task][seed] - min(base)) / max(max(base) - min(base), MIN_SPREAD))


def _reward(scores, fp: str, seed: int, how: str, baseline_seed: int | None = None) -> float:
    """`fp`'s suite reward at `seed`: its tasks' normalized scores, aggregated `how`."""
    normalized = [_norm(scores, fp, task, seed, baseline_seed) for task in TASKS]
    return float(np.mean(normalized)) if how == "mean" else min(normalized)


@pytest.mark.parametrize("how", ["mean", "min"])
def test_the_stage_2_score_is_the_suite_aggregate_normalized_against_each_seeds_own_baselines(searched, tmp_path,
                                                                                              how):
    db = tmp_path / "s.sqlite"
    shutil.copy(searched, db)
    funnel(db, **FUNNEL)
    with Store(db, readonly=True) as store:
        stored = load_funnel(store)
        rows = [r for r in store.evaluations() if r.stage == PROXY]
    assert stored.plan.aggregate == "mean"  # the search's
    result = analyze(dataclasses.replace(stored.plan, aggregate=how), rows)
    table, scores = result.proxy, _tuned(rows)
    for e in table.entries:
        assert e.scores == pytest.approx({seed: _reward(scores, e.fingerprint, seed, how) for seed in (1, 2)}), e.name
        assert list(e.per_task) == list(TASKS)
        for task, (raw, normalized) in e.per_task.items():
            assert raw == pytest.approx(np.mean(list(scores[e.fingerprint, task].values())))
            assert normalized == pytest.approx(np.mean([_norm(scores, e.fingerprint, task, s) for s in (1, 2)]))
    # each seed has its own baselines: normalizing seed 2 against seed 1's would have scored the rules otherwise
    assert any(_reward(scores, e.fingerprint, 2, how, baseline_seed=1) != pytest.approx(e.scores[2])
               for e in table.found)
    best = table.best_baseline
    assert best.role == "baseline" and all(e.gap == pytest.approx(e.mean - best.mean) for e in table.entries)
    assert [e.mean for e in table.entries] == sorted((e.mean for e in table.entries), reverse=True)
    assert [str(r) for r in result.finalists] == [e.rule for e in table.found][:1]  # the best found rule goes on



def test_held_out_defaults_exclude_every_suite_task_and_the_plan_keeps_the_suite():
    base = Settings("fashion_mnist_conv", (0.01, 0.1), 10)
    rule = resolve("adam * exp(m)")
    trials = [Trial(str(rule), list(rule.tokens), rule.fingerprint, "ok", 0.9, strategy="random")]
    config = FunnelConfig(top=1, seeds=2, finalists=1)
    single = make_plan(config, base.replace(task="digits"), trials)
    assert [s.task for s in single.transfer] == ["fashion_mnist_conv", "kjv_char_lstm"] and single.suite == []
    plan = make_plan(config, base, trials, Suite.of(("fashion_mnist_conv", "digits"), base, "min"))
    assert [s.task for s in plan.transfer] == ["kjv_char_lstm"]  # not the suite's ConvNet
    assert [s.task for s in plan.proxies] == ["fashion_mnist_conv", "digits"] and plan.aggregate == "min"
    again = Plan.from_json(plan.to_json())
    assert (again.suite, again.aggregate, again.proxy) == (plan.suite, "min", plan.proxy)
    assert "suite" not in single.to_json() and Plan.from_json(single.to_json()).suite == []


def test_a_suite_funnel_without_every_suite_baseline_is_refused_before_anything_is_written(db):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(SettingsError, match=r"baselines: .* normalizes each task against sgd, .*; missing: momentum"):
        funnel(db, **{**FUNNEL, "baselines": ["sgd", "adam", "rmsprop", "adam * cd", "m * cd"]})
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["s.sqlite"]


def test_the_cli_and_the_report_show_the_suite_table_with_per_task_columns(db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["funnel", str(db), "--top", "2", "--seeds", "2", "--finalists", "1", "--tasks", "digits",
                 "--tune-seeds", "1", "--score-seeds", "2", "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "digits,mnist1d (stage 2, the search's suite; 2 seeds)" in out
    assert "digits (raw / norm) ┃ mnist1d (raw / norm)" in out and "then the mean over the tasks" in out
    write_report(db, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Funnel: digits,mnist1d (stage 2, the search's suite)" in text
    assert "| seeds | digits (raw / norm) | mnist1d (raw / norm) |" in text


def test_the_second_runs_single_task_funnel_reads_as_before(tmp_path):
    db = tmp_path / "run2-ppo.sqlite"
    shutil.copy(DISCOVERY / "run2-ppo.sqlite", db)  # a copy: the committed store is never opened for writing
    with Store(db, readonly=True) as store:
        result = load_funnel(store)
    assert result.plan.suite == [] and result.plan.aggregate is None and "suite" not in result.plan.to_json()
    assert read_plan(db, result.plan.config).to_json() == result.plan.to_json()  # a rerun plans what it stored
    assert result.proxy.tasks == () and all(e.per_task == {} for e in result.proxy.entries)
    assert all(len(entry_texts(1, e)) == len(ENTRY_HEADERS) for e in result.proxy.entries)
    assert all(not math.isnan(e.mean) and e.lr is not None for e in result.proxy.entries)
