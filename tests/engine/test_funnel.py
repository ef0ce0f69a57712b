"""The funnel: statistics on known numbers, stages on tiny real budgets, resume after kill -9, bad input."""

import hashlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from optsearch.cli import main
from optsearch.dsl import parse
from optsearch.engine import Store, Trial, search
from optsearch.engine.config import SearchConfig
from optsearch.engine.funnel_analysis import (
    Entry,
    FunnelResult,
    TaskTable,
    analyze,
    compare,
    load_funnel,
    tuned_scores,
)
from optsearch.engine.funnel_plan import (
    FOUND,
    FUNNEL_BASELINES,
    PROXY,
    REFERENCE,
    REFERENCE_RULES,
    SCORE,
    TRANSFER,
    FunnelConfig,
    make_plan,
)
from optsearch.engine.funnel_run import funnel
from optsearch.engine.funnel_text import entry_texts, progress_text, table_state
from optsearch.engine.reaper import descendants
from optsearch.engine.stats import detectable_gap, holm, paired_p, spearman, verdict
from optsearch.engine.store import BASELINE, StoredEvaluation
from optsearch.optim.zoo import resolve
from optsearch.tasks import Evaluation, LrResult, Settings, Status
from optsearch.tasks.results import baselines_broken

DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"
TINY = ["--top", "3", "--seeds", "2", "--finalists", "2", "--tasks", "digits", "--tune-seeds", "2",
        "--score-seeds", "2", "--steps", "30"]
FIXED = len(FUNNEL_BASELINES) + len(REFERENCE_RULES)
"""The rules every stage trains beside the found ones by default."""


# --- statistics ---------------------------------------------------------------------------------
def test_holm_multiplies_the_kth_smallest_by_m_minus_k_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, never smaller than an earlier step
    adjusted = holm([0.02, math.nan, 0.01])  # a missing p counts toward nothing
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_paired_p_is_scipys_paired_t_test_over_the_common_seeds():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.02, 5), rng.normal(0.58, 0.02, 5)
    expected = stats.ttest_rel(a, b).pvalue
    assert paired_p(dict(enumerate(a)), {**dict(enumerate(b)), 9: 0.1}) == pytest.approx(expected)
    assert paired_p({1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.5}) == 0.0  # the same gap on every seed
    assert paired_p({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6}) == 1.0
    assert math.isnan(paired_p({1: 0.5}, {1: 0.4, 2: 0.5}))


def test_verdict_needs_an_adjusted_p_below_alpha_and_takes_the_gaps_sign():
    assert verdict(0.02, 0.01) == "beats"
    assert verdict(-0.02, 0.01) == "loses"
    assert verdict(0.02, 0.2) == "ties"
    assert verdict(0.02, math.nan) == "incomplete"


def _entry(name, scores, baseline=None, role=None):
    rule = parse(name)
    role = role or (FOUND if baseline is None else BASELINE)
    return Entry(str(rule), rule.fingerprint, rule.tokens, baseline, role, 0.1, dict(enumerate(scores)))


def test_a_rule_clearly_better_on_every_seed_beats_the_best_baseline_and_holm_spares_no_one():
    sgd, adam = _entry("g", [0.50, 0.52, 0.49, 0.51], "sgd"), _entry("adam", [0.60, 0.63, 0.61, 0.60], "adam")
    better = _entry("adam * exp(m)", [0.70, 0.74, 0.72, 0.71])
    same = _entry("m * exp(v)", [0.61, 0.62, 0.60, 0.62])
    worse = _entry("g + drop(m, 0.3)", [0.30, 0.33, 0.31, 0.30])
    compare([sgd, adam, better, same, worse])
    assert (adam.verdict, sgd.verdict) == ("best baseline", "baseline")
    assert better.gap == pytest.approx(better.mean - adam.mean) and better.gap > 0
    assert [better.verdict, same.verdict, worse.verdict] == ["beats", "ties", "loses"]
    raw = [better.p, same.p, worse.p]
    assert [better.p_adjusted, same.p_adjusted, worse.p_adjusted] == pytest.approx(holm(raw))
    assert better.p_adjusted > better.p  # corrected for the three rules of the task
    d = np.subtract(list(better.scores.values()), list(adam.scores.values()))
    assert better.detectable == pytest.approx(detectable_gap(np.std(d, ddof=1), 4, 3))
    assert math.isnan(adam.detectable) and math.isnan(sgd.detectable)


def test_a_reference_rule_is_judged_apart_and_never_the_verdicts_baseline():
    adam = _entry("adam", [0.60, 0.63, 0.61, 0.60], "adam")
    paper = _entry("g * exp(ld * sign(g) * sign(m))", [0.80, 0.84, 0.81, 0.82], "powersign-ld", REFERENCE)
    found = _entry("adam * exp(m)", [0.70, 0.74, 0.72, 0.71])
    worse = _entry("g + drop(m, 0.3)", [0.30, 0.33, 0.31, 0.30])
    compare([adam, paper, found, worse])
    # the reference scores best of all, yet the found rules are judged against the best baseline, Adam
    assert (adam.verdict, found.verdict, paper.verdict) == ("best baseline", "beats", "beats")
    assert found.gap == pytest.approx(found.mean - adam.mean)
    assert found.p_adjusted == pytest.approx(holm([found.p, worse.p])[0])  # Holm over the found rules only
    assert paper.p_adjusted == pytest.approx(paper.p)  # alone in its family
    table = TaskTable(TRANSFER, "digits", (0, 1, 2, 3), [paper, found, adam, worse])
    assert [e.rule for e in table.found] == [found.rule, worse.rule]
    versus = table.versus_references
    assert (versus.found, versus.reference) == (found, paper)
    assert versus.gap == pytest.approx(found.mean - paper.mean) and versus.p == paired_p(found.scores, paper.scores)


def test_the_detectable_gap_is_the_textbook_one_and_a_simulation_detects_it_80_percent_of_the_time():
    # the textbook case: a paired (one-sample) t-test on 10 seeds, two-sided alpha 0.05, 80% power needs d ~ 1.0
    assert detectable_gap(1.0, 10, 1) == pytest.approx(0.9960, abs=1e-3)
    spread, n, rules = 0.02, 10, 5
    gap = detectable_gap(spread, n, rules)
    d = np.random.default_rng(0).normal(gap, spread, (40_000, n))  # 40k experiments' per-seed differences
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    power = np.mean(2 * stats.t.sf(np.abs(t), n - 1) < 0.05 / rules)
    assert power == pytest.approx(0.80, abs=0.01)
    assert detectable_gap(spread, 20, rules) < gap < detectable_gap(spread, n, 10)  # more seeds, more rules
    assert detectable_gap(0.0, n, rules) == 0.0 and math.isnan(detectable_gap(spread, 1, rules))


def test_a_rule_or_baseline_missing_a_seed_leaves_every_verdict_incomplete_not_final():
    sgd, adam = _entry("g", [0.50, 0.52, 0.49, 0.51], "sgd"), _entry("adam", [0.60, 0.63, 0.61], "adam")
    better = _entry("adam * exp(m)", [0.70, 0.74, 0.72, 0.71])
    compare([sgd, adam, better], seeds=4)
    assert better.verdict == "incomplete" and better.gap > 0  # the numbers so far, provisional
    assert (adam.verdict, sgd.verdict) == ("best baseline", "baseline")


def test_a_task_whose_baselines_never_trained_marks_every_entry_invalid_never_a_verdict():
    invalid = Evaluation("g", "digits", 0.0, Status.INVALID, "IndexError: Target 4 is out of bounds.\nmore")
    diverged = Evaluation("g", "digits", 0.0, Status.DIVERGED, "every learning rate diverged")
    assert baselines_broken([invalid, invalid]) == ("every baseline came back invalid or failed (g: invalid: "
                                                    "IndexError: Target 4 is out of bounds.)")
    assert baselines_broken([invalid, diverged]) is None and baselines_broken([]) is None
    sgd, rule = _entry("g", [0.0, 0.0], "sgd"), _entry("m", [0.0, 0.0])
    compare([sgd, rule], seeds=2, problem="every baseline came back invalid or failed")
    assert (sgd.verdict, rule.verdict) == ("invalid", "invalid") and math.isnan(rule.p)


def test_the_lr_is_tuned_on_mean_validation_and_the_score_is_test_at_that_lr():
    def ev(seed, val_small, val_big):
        per_lr = [LrResult(0.01, val_small, val_small - 0.1), LrResult(0.1, val_big, val_big - 0.2)]
        return Evaluation("g", "digits", max(val_small, val_big), "ok", per_lr=per_lr, seed=seed)

    # seed 1 alone would pick 0.1; the mean over seeds picks 0.01, and every seed is scored there
    lr, scores = tuned_scores({1: ev(1, 0.50, 0.55), 2: ev(2, 0.60, 0.30)})
    assert lr == 0.01 and scores == pytest.approx({1: 0.40, 2: 0.50})
    never = Evaluation("g", "digits", 0.0, "invalid", "boom")
    assert tuned_scores({3: never}) == (None, {3: 0.0})


def test_predictiveness_ranks_the_finalists_stage_1_and_stage_2_against_each_held_out_task():
    def entry(fp, mean, baseline=None):
        return Entry(fp, fp, (), baseline, FOUND if baseline is None else BASELINE, 0.1, {1: mean, 2: mean})

    # stage 1 orders a > b > c > d; stage 2 orders b > a > c > d; the held-out task d > c > b > a (and a baseline)
    stage1 = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    proxy = TaskTable("proxy", "mnist1d", (1, 2), [entry("a", 0.5), entry("b", 0.6), entry("c", 0.4),
                                                   entry("d", 0.3), entry("g", 0.9, "sgd")])
    scored = [entry(f, m) for f, m in zip("abcd", (0.1, 0.2, 0.3, 0.4), strict=True)]
    unscored = Entry("e", "e", (), None, FOUND, None, {})
    held_out = TaskTable("transfer", "digits", (1, 2), [*scored, entry("g", 0.9, "sgd"), unscored])
    result = FunnelResult(SimpleNamespace(stage1=stage1), proxy, [held_out], [], [])
    (p,) = result.predictiveness
    assert (p.task, p.rules) == ("digits", 4)
    assert p.stage1 == pytest.approx(-1.0) and p.stage2 == pytest.approx(stats.spearmanr([5, 6, 4, 3], [1, 2, 3, 4])
                                                                          .statistic)


def test_spearman_is_nan_where_a_rank_correlation_means_nothing():
    assert spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(stats.spearmanr([1, 2, 3], [3, 1, 2]).statistic)
    assert math.isnan(spearman([1, 2], [1, 2]))  # two pairs
    assert math.isnan(spearman([1, 2, 3], [1, 1, 1]))  # a constant side
    assert math.isnan(spearman([1, 2, math.nan], [1, 2, 3]))


# --- the stages on tiny real budgets ----------------------------------------------------------------
@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A real random search on digits (30 steps, 2 lrs): 6 rules plus the search's baselines."""
    db = tmp_path_factory.mktemp("search") / "s.sqlite"
    search(task="digits", strategy="random", budget=6, steps=30, lrs=[1e-2, 1e-1], db=db, seed=0)
    return db


@pytest.fixture
def db(searched, tmp_path) -> Path:
    shutil.copy(searched, tmp_path / "s.sqlite")
    return tmp_path / "s.sqlite"


def test_the_stages_store_one_row_per_rule_and_seed_and_a_rerun_computes_nothing(db):
    kw = dict(top=3, finalists=2, tasks=["digits"], tune_seeds=2, score_seeds=3, steps=40)
    result = funnel(db, seeds=2, **kw)
    assert result.stopped == "done" and result.reused == 0
    with Store(db, readonly=True) as store:
        rows = store.evaluations()
        trials = store.trials(order="reward")
    top = [t.rule for t in trials if t.status == "ok" and t.strategy != "baseline"][:3]
    proxy, tune, score = ([r for r in rows if r.stage == stage] for stage in (PROXY, TRANSFER, SCORE))
    assert len(proxy) == (3 + FIXED) * 2 and len(tune) == (2 + FIXED) * 2 and len(score) == (2 + FIXED) * 3
    assert len(rows) == result.computed
    fixed = {str(resolve(name)) for name in (*FUNNEL_BASELINES, *REFERENCE_RULES)}
    assert {r.rule for r in proxy} == {*top, *fixed}
    # fresh seeds (the search ran at seed 0); stage 3 scores on seeds its tuning never saw
    assert {r.seed for r in proxy} == {r.seed for r in tune} == {1, 2} and {r.seed for r in score} == {3, 4, 5}
    assert {r.evaluation.steps for r in proxy} == {30}
    assert {r.evaluation.steps for r in rows if r.stage != PROXY} == {40}
    # stage 3 tunes past the grid's edge: SGD's best of (0.01, 0.1) on digits is the edge, so 1 is tried too
    assert all({0.01, 0.1, 1.0} <= {p.lr for p in r.evaluation.per_lr} for r in tune if r.rule == "g")
    assert len({r.key for r in rows}) == len(rows)
    finalists = [e.rule for e in result.proxy.found[:2]]
    assert {r.rule for r in tune} == {r.rule for r in score} == {*finalists, *fixed}
    assert [str(r) for r in result.finalists] == finalists
    # each rule is scored at its tuned rate alone, and those rows alone are its scores
    (table,) = result.transfer
    assert (table.tune_seeds, table.seeds) == ((1, 2), (3, 4, 5))
    for e in table.entries:
        mine = {r.seed: r.evaluation for r in score if r.fingerprint == e.fingerprint}
        assert all([p.lr for p in ev.per_lr] == [e.lr] for ev in mine.values())
        assert e.scores == {seed: ev.per_lr[0].test_acc for seed, ev in mine.items()}
    assert {e.name for e in table.entries if e.role == REFERENCE} == set(REFERENCE_RULES)
    assert {e.name for e in table.entries if e.role == BASELINE} == set(FUNNEL_BASELINES)
    assert table.best_baseline.role == BASELINE and table.versus_references is not None
    assert len(result.leaderboard) == 2 + FIXED and {s.name for s in result.leaderboard if s.role == BASELINE} == {
        *FUNNEL_BASELINES}

    again = funnel(db, seeds=2, **kw)
    assert (again.computed, again.reused) == (0, len(rows))
    more = funnel(db, seeds=3, **kw)
    with Store(db, readonly=True) as store:
        added = [r for r in store.evaluations() if r.key not in {old.key for old in rows}]
    assert more.computed == len(added)  # a third seed: only its rows (and a new finalist's, if one) are trained
    assert sorted((r.stage, r.seed) for r in added if r.stage == PROXY) == [(PROXY, 3)] * (3 + FIXED)


def test_the_verdict_on_a_held_out_task_counts_only_the_fresh_score_seeds():
    """A rule far ahead on the seeds that tuned its rate but level with the baseline on the fresh ones ties."""
    rules = {"adam": parse("adam"), "found": parse("adam * exp(m)")}
    trials = [Trial("adam * exp(m)", list(rules["found"].tokens), rules["found"].fingerprint, "ok", 0.9,
                    strategy="random")]
    config = FunnelConfig(top=1, seeds=2, finalists=1, tasks=("digits",), tune_seeds=2, score_seeds=4,
                          baselines=("adam",), references=())
    plan = make_plan(config, Settings("mnist1d", (0.01, 0.1), 30), trials)
    (stage,) = plan.transfer
    assert set(stage.seeds).isdisjoint(stage.score_seeds) and len(stage.score_seeds) == 4

    def row(rule, key, per_lr):
        fingerprint, name, task, seed, settings = key
        ev = Evaluation(str(rule), task, 0.5, "ok", per_lr=per_lr, seed=seed)
        return StoredEvaluation(fingerprint, str(rule), name, task, seed, settings, ev)

    rows = [row(rule, plan.proxy.row_key(rule, seed), [LrResult(0.1, 0.6, 0.6)])
            for rule in rules.values() for seed in plan.proxy.seeds]  # stage 2 makes the rule a finalist
    for seed in stage.seeds:  # tuning: lr 0.1 is best for both; the found rule is 0.3 ahead on test there
        for who, bonus in (("adam", 0.0), ("found", 0.3)):
            per_lr = [LrResult(0.01, 0.4, 0.4 + bonus), LrResult(0.1, 0.6, 0.6 + bonus)]
            rows.append(row(rules[who], stage.row_key(rules[who], seed), per_lr))
    for i, seed in enumerate(stage.score_seeds):  # scoring at 0.1: level, up to noise
        for who, jitter in (("adam", 0.0), ("found", (-1) ** i * 0.01)):
            per_lr = [LrResult(0.1, 0.6, 0.6 + jitter)]
            rows.append(row(rules[who], stage.score_key(rules[who], seed, 0.1), per_lr))
    (table,) = analyze(plan, rows).transfer
    found = next(e for e in table.entries if e.role == FOUND)
    assert found.lr == 0.1 and set(found.scores) == set(stage.score_seeds)
    assert found.gap == pytest.approx(0.0) and found.verdict == "ties"


def test_adam_clearly_beats_sgd_on_its_grid_and_a_rule_that_barely_moves_loses(tmp_path):
    """A constructed search whose candidates are Adam and a rule whose steps are ~1e-5 of SGD's, against SGD alone
    (on the proxy's grid of 0.01 and 0.1, where SGD wants more)."""
    db = tmp_path / "s.sqlite"
    settings = Settings("digits", (1e-2, 1e-1), 60, None, 0)
    with Store(db) as store:
        store.set_meta("config", SearchConfig(settings, strategy="random").to_json())
        for text, reward in (("adam", 0.9), ("clip(g, 1e-5)", 0.1)):
            rule = parse(text)
            store.add_trial(Trial(str(rule), list(rule.tokens), rule.fingerprint, "ok", reward, strategy="random"))
    result = funnel(db, top=2, seeds=3, finalists=2, tasks=["digits"], tune_seeds=3, score_seeds=3, steps=60,
                    baselines=["sgd"], references=())
    verdicts = {e.rule: e.verdict for e in result.proxy.entries}
    assert verdicts == {"adam": "beats", "g": "best baseline", "clip(g, 1e-5)": "loses"}, result.proxy
    # stage 3 extends the grid: SGD is tuned past 0.1 there, and the barely-moving rule still loses
    (transfer,) = result.transfer
    entries = {e.rule: e for e in transfer.entries}
    assert entries["g"].lr >= 1.0 and entries["clip(g, 1e-5)"].verdict == "loses", transfer


WRONG_WIDTH = """
import torch
from torch import nn
import optsearch

def make_task():  # sound data, but a model that takes 5 features where there are 4: nothing can train on it
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, 2, (60,), generator=g)
    return optsearch.Task.from_tensors("wrong_width", lambda: nn.Linear(5, 2), train=(x[:40], y[:40]),
                                       val=(x[40:50], y[40:50]), test=(x[50:], y[50:]), steps=5, batch_size=8)
"""


def test_a_held_out_task_that_trains_nothing_is_marked_invalid_never_a_tie(db, tmp_path, capsys):
    task = tmp_path / "wrong_width.py"
    task.write_text(WRONG_WIDTH)
    args = ["funnel", str(db), "--top", "2", "--seeds", "2", "--finalists", "1", "--tasks", f"{task}:make_task",
            "--tune-seeds", "2", "--score-seeds", "2"]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "invalid: every baseline came back invalid or failed" in out
    assert "Spearman — over 2 rules" in out  # too few rules for a rank correlation: a dash, as the tables print
    with Store(db, readonly=True) as store:
        result = load_funnel(store)
    (table,) = result.transfer
    assert table.problem.startswith("every baseline came back invalid or failed (g: invalid: ")
    assert {e.verdict for e in table.entries} == {"invalid"}
    assert all(table.task not in s.verdicts for s in result.leaderboard)  # ranks on it would mean nothing


def test_a_failed_result_is_replaced_and_a_finished_one_never(tmp_path):
    rule = parse("g")
    ok = Evaluation("g", "digits", 0.5, "ok")
    failed = Evaluation("g", "digits", 0.0, "failed", "worker died")
    with Store(tmp_path / "s.sqlite") as store:
        assert store.add_evaluation(StoredEvaluation(rule.fingerprint, "g", PROXY, "digits", 1, "k", failed))
        assert store.add_evaluation(StoredEvaluation(rule.fingerprint, "g", PROXY, "digits", 1, "k", ok))
        assert not store.add_evaluation(StoredEvaluation(rule.fingerprint, "g", PROXY, "digits", 1, "k", failed))
        (row,) = store.evaluations()
    assert row.evaluation.status is Status.OK and row.evaluation.reward == 0.5


def test_the_second_runs_funnel_stored_before_score_seeds_still_loads_as_it_was_scored(tmp_path):
    """run2-ppo.sqlite (issue 12) tuned and scored stage 3 on the same 3 seeds and had no reference rules."""
    db = tmp_path / "run2-ppo.sqlite"
    shutil.copy(DISCOVERY / "run2-ppo.sqlite", db)  # a copy: the committed store is never opened for writing
    with Store(db, readonly=True) as store:
        result = load_funnel(store)
    assert result.complete and not result.plan.references and len(result.proxy.seeds) == 10
    for table in result.transfer:
        assert (table.seeds, table.tune_seeds) == ((1, 2, 3), ()) and table.problem is None
        assert {e.role for e in table.entries} == {BASELINE, FOUND} and len(table.found) == 5
        assert all(e.verdict in ("beats", "ties", "loses") and not math.isnan(e.detectable) for e in table.found)


def test_stores_written_before_the_funnel_read_as_having_no_evaluations():
    with Store(DISCOVERY / "ppo-seed0.sqlite", readonly=True) as store:
        assert store.evaluations() == [] and store.count_trials() > 0


# --- kill -9 and resume ----------------------------------------------------------------------------
def _rows(db: Path) -> int:
    try:
        with Store(db, readonly=True) as store:
            return len(store.evaluations())
    except Exception:  # noqa: BLE001 - not created yet, or mid-creation
        return 0


def test_kill_9_then_resume_keeps_every_finished_result_and_computes_none_twice(db, survivors):
    args = [sys.executable, "-m", "optsearch.cli", "funnel", str(db), "--top", "3", "--seeds", "4", "--finalists",
            "2", "--tasks", "digits", "--tune-seeds", "2", "--score-seeds", "2", "--steps", "300", "--references",
            "--executor", "process", "--workers", "2"]
    total = (3 + len(FUNNEL_BASELINES)) * 4 + (2 + len(FUNNEL_BASELINES)) * (2 + 2)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _rows(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert survivors(workers) == []  # the pool's workers end with their parent
    kept = _rows(db)
    assert 0 < kept < total
    with Store(db, readonly=True) as store:
        before = {r.key: (r.id, r.created_at) for r in store.evaluations()}

    done = subprocess.run(args[:-4], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    summary = re.search(r"(\d+) evaluations computed now, (\d+) found in the db; stopped: done",
                        " ".join(done.stdout.split()))
    assert summary and (int(summary[1]), int(summary[2])) == (total - kept, kept)
    with Store(db, readonly=True) as store:
        after = store.evaluations()
    assert len(after) == total == len({r.key for r in after})
    assert {r.key: (r.id, r.created_at) for r in after if r.key in before} == before


# --- bad input -----------------------------------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("extra", "message"), [
    (["--tasks", "imagenet"], "unknown task 'imagenet'"),
    (["--baselines", "foo(g)"], "'foo(g)' is neither an optimizer name nor a rule"),
    (["--seeds", "1"], "--seeds: got '1'; allowed: a whole number >= 2"),
    (["--score-seeds", "1"], "--score-seeds: got '1'; allowed: a whole number >= 2"),
    (["--tune-seeds", "0"], "--tune-seeds: got '0'; allowed: a whole number >= 1"),
    (["--references", "foo(g)"], "'foo(g)' is neither an optimizer name nor a rule"),
    (["--also", "foo(g)"], "'foo(g)' is neither an optimizer name nor a rule"),
    (["--steps", "cifar=5"], "steps: given for 'cifar', which is not among the tasks digits"),
    (["--steps", "digits=0"], "steps for digits: got 0"),
    (["--steps", "digits=5,digits=7"], "'digits=7' gives digits a second time"),
    (["--steps", "=5"], "'=5' names no task"),
    (["--executor", "slurm"], "executor: got 'slurm'"),
    (["--lrs", "0,1"], "lrs: got"),
    (["--lrs", ""], "lrs: got (); allowed: a non-empty list"),
])
def test_bad_options_fail_in_one_line_before_anything_is_written(db, capsys, extra, message):
    before = _digest(db)
    assert main(["funnel", str(db), *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert _digest(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["s.sqlite"]  # no lock, no empty -wal or -shm


def test_a_db_that_holds_no_task_search_is_refused(tmp_path, capsys):
    objective = tmp_path / "objective.sqlite"
    search(objective=lambda rule: 0.5, strategy="random", budget=2, db=objective)
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    for path, message in ((tmp_path / "missing.sqlite", "no search at"), (tmp_path, "no search at"),
                          (text, "not an SQLite database"), (objective, "search of an objective")):
        assert main(["funnel", str(path), *TINY]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_db_being_written_is_refused(db, capsys):
    with Store(db):  # holds the writer's lock, as a running search does
        assert main(["funnel", str(db), *TINY]) == 2
    assert "is being written by" in capsys.readouterr().err
    with Store(db, readonly=True) as store:
        assert store.evaluations() == []


def test_jobs_finished_before_ctrl_c_are_stored_not_lost(db):
    def stop_at_first_result(progress):
        if progress.computed:
            raise KeyboardInterrupt

    kw = dict(top=3, seeds=2, finalists=2, tasks=["digits"], tune_seeds=2, score_seeds=2, steps=40)
    result = funnel(db, on_progress=stop_at_first_result, **kw)
    assert result.stopped == "interrupted"
    with Store(db, readonly=True) as store:
        kept = len(store.evaluations())
    assert kept == 2 * (3 + FIXED)  # both jobs the inline executor had finished: seeds 1 and 2 of the proxy rules
    planned = (3 + FIXED) * 2 + (2 + FIXED) * 2  # stage 2: 3 found rules; stage 3: 2 finalists, scored on 2 seeds
    assert result.progress == (kept, planned) and not result.complete
    assert progress_text(result) == (f"The funnel is incomplete: {kept} of {planned} results are stored, so every "
                                     "verdict waits for the rest; run the funnel again to finish it.")
    assert table_state(result.proxy) is None  # stage 2 has all its rows; stage 3 none yet
    assert [table_state(t) for t in result.transfer] == [f"incomplete: 0 of {(2 + FIXED) * 2} results"]
    finished = funnel(db, **kw)
    assert finished.reused == kept and finished.complete and progress_text(finished) is None


def test_a_rule_from_elsewhere_goes_through_every_stage_as_a_found_rule_and_always_reaches_stage_3(db):
    """`also` (a control search's best, say): judged like the search's own rules, taken to stage 3 beside the
    finalists however it ranks in stage 2; one equal to a candidate or a baseline is not trained twice."""
    with Store(db, readonly=True) as store:
        top = [t.rule for t in store.trials(order="reward") if t.status == "ok" and t.strategy != "baseline"]
    slow = "clip(g, 1e-5)"  # barely moves: last of stage 2, yet a finalist
    kw = dict(top=2, finalists=1, tasks=["digits"], tune_seeds=2, score_seeds=2, steps=30, seeds=2)
    result = funnel(db, also=[slow, top[0], "adam"], **kw)
    assert result.stopped == "done"
    assert [str(r) for r in result.plan.also] == [slow]
    assert [str(r) for r in result.plan.rescored] == [*top[:2], slow]
    assert [e.rule for e in result.proxy.found][-1] == slow  # last in stage 2 ...
    assert [str(r) for r in result.finalists] == [result.proxy.found[0].rule, slow]  # ... and still in stage 3
    (table,) = result.transfer
    mine = [e for e in table.entries if e.rule == slow]
    assert [(e.role, e.name, len(e.scores)) for e in mine] == [(FOUND, f"{slow} (also)", 2)]
    assert entry_texts(1, mine[0])[1] == f"{slow} (also)"  # its text once, not again in brackets
    assert mine[0].verdict in ("beats", "ties", "loses")  # judged, not just shown
    assert result.complete
    with Store(db, readonly=True) as store:  # the stored plan keeps them (what the report reads)
        assert [str(r) for r in load_funnel(store).plan.also] == [slow]
