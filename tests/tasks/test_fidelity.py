"""Successive halving inside an evaluation, learning-rate grids that grow to fit a rule, multi-seed rewards."""

import statistics

import pytest

from optsearch.cli import build_parser, settings_from_args
from optsearch.tasks import Evaluation, LrResult, Settings, SettingsError, evaluate
from optsearch.tasks.evaluate import halving_policy

FAST = dict(task="digits", steps=40, batch_size=32, lrs=[1e-3, 1e-2, 1e-1])
RULES = ["adam", "-g", "sign(g)", "exp(exp(exp(2))) * g"]  # good, hopeless, good, diverges


def run(rules, **kw):
    done = [0]
    evs = evaluate(rules, progress=lambda d, _: done.__setitem__(0, d), **{**FAST, **kw})
    return evs, done[0]


def test_halving_stops_a_hopeless_rule_at_the_first_rung_and_the_cost_falls():
    (_, hopeless_full, *_), full_cost = run(RULES)
    (adam, hopeless, sign, explode), cost = run(RULES, fidelity="halving")
    first_rung = min(halving_policy(Settings(**FAST, fidelity="halving").resolved()).floors)
    assert hopeless.status == "ok" and hopeless.stopped_at == first_rung == 8
    assert all(p.stopped_at == 8 and p.loss is None and len(p.curve) == 1 for p in hopeless.per_lr)
    assert hopeless.reward == max(p.curve[0] for p in hopeless.per_lr) and hopeless.reward < 0.2
    assert explode.status == "diverged" and explode.reward == 0.0  # a result, not an exception
    assert adam.stopped_at is None and sign.stopped_at is None
    assert cost < full_cost / 2  # member-steps: stopped members left the stacked population


def test_a_kept_member_trains_exactly_as_at_full_fidelity():
    full, _ = run(RULES)
    halved, _ = run(RULES, fidelity="halving")
    for f, h in zip(full[::2], halved[::2], strict=True):  # adam and sign(g): deterministic, kept
        kept = [p for p in h.per_lr if p.stopped_at is None]
        assert kept and kept == [p for p in f.per_lr if p.lr in {k.lr for k in kept}]
        assert any(p.stopped_at for p in h.per_lr)  # some of its learning rates were dropped
        assert (h.reward, h.best_lr) == (f.reward, f.best_lr)


STOCHASTIC = ["adam", "drop(adam, 0.1) + drop(g, 0.3)", "adam + eps", "sign(g) + eps - 1e-2*w",
              "drop(m, 0.1) + drop(g, 0.3)"]  # deterministic, dropout, noise, noise reading w, stopped


def test_a_stochastic_rule_is_halved_by_lr_and_its_kept_members_train_exactly_as_at_full_fidelity():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    full, full_cost = run(STOCHASTIC, lrs=lrs)
    halved, cost = run(STOCHASTIC, lrs=lrs, fidelity="halving")
    for f, h in zip(full, halved, strict=True):
        kept = [p for p in h.per_lr if p.stopped_at is None]
        assert kept == [p for p in f.per_lr if p.lr in {k.lr for k in kept}]  # curves, test scores, losses
        assert not kept or (h.reward, h.best_lr) == (f.reward, f.best_lr)
    for h in halved[:4]:  # each kept to the end at some lrs, its other lrs dropped (its block shrank)
        assert 0 < sum(p.stopped_at is None for p in h.per_lr) < len(lrs)
    assert halved[4].stopped_at is not None
    assert cost < full_cost / 2  # member-steps
    assert run(STOCHASTIC[1:2], lrs=lrs, fidelity="halving")[0][0].per_lr == halved[1].per_lr


def test_halving_results_do_not_depend_on_how_rules_are_grouped():
    together, _ = run(RULES, fidelity="halving")
    apart = [run([rule], fidelity="halving")[0][0] for rule in RULES]
    assert [e.per_lr for e in together] == [e.per_lr for e in apart]


def test_sgd_with_its_best_lr_at_the_top_of_the_grid_gets_the_next_decades():
    narrow = evaluate("sgd", **{**FAST, "lrs": [1e-3, 1e-2]})
    assert narrow.best_lr == 1e-2  # the edge: without extension SGD is judged on a truncated grid
    ev = evaluate("sgd", extend_lrs=True, **{**FAST, "lrs": [1e-3, 1e-2]})
    tried = [p.lr for p in ev.per_lr]
    assert tried[:3] == [1e-3, 1e-2, 1e-1] and ev.best_lr > 1e-2 and ev.reward > narrow.reward
    assert ev.best_lr < max(tried) or max(tried) == 100.0  # the best is no longer at the edge
    assert ev.per_lr[:2] == narrow.per_lr  # the same init and minibatches in every pass


def test_multi_seed_reward_is_the_mean_at_one_lr_chosen_by_the_mean():
    ev = evaluate("adam", seeds=[0, 1, 2], **FAST)
    singles = [evaluate("adam", seed=s, **FAST) for s in (0, 1, 2)]
    means = {lr: statistics.fmean(next(p.val_acc for p in e.per_lr if p.lr == lr) for e in singles)
             for lr in FAST["lrs"]}
    assert ev.best_lr == max(means, key=means.get) and ev.seeds == [0, 1, 2]
    assert ev.seed_rewards == [next(p.val_acc for p in e.per_lr if p.lr == ev.best_lr) for e in singles]
    assert ev.reward == pytest.approx(statistics.fmean(ev.seed_rewards))
    assert ev.std == pytest.approx(statistics.stdev(ev.seed_rewards))
    assert ev.sem == pytest.approx(ev.std / 3 ** 0.5)
    assert singles[0].std is None and singles[0].seed_rewards == [singles[0].reward]


@pytest.mark.parametrize(("changes", "message"), [
    (dict(seeds=()), "seeds: got"),
    (dict(seeds=(1, 1)), "seeds: got"),
    (dict(seeds=(0, -1)), "seeds: got -1"),
    (dict(fidelity="half"), "fidelity: got 'half'; allowed: full, halving"),
    (dict(extend_lrs="yes"), "extend_lrs: got 'yes'"),
])
def test_bad_fidelity_seeds_or_extend_lrs_are_refused(changes, message):
    with pytest.raises(SettingsError, match=message):
        Settings(**changes)


def test_multi_seed_settings_round_trip_and_take_their_first_seed():
    s = Settings(task="digits", seeds=[3, 4], fidelity="halving", extend_lrs=True)
    assert s.seed == 3 and s.all_seeds == (3, 4) and Settings.from_json(s.to_json()) == s


def test_cli_seeds_count_from_seed_and_fidelity_flags_reach_the_settings():
    args = build_parser().parse_args(["evaluate", "adam", "--seeds", "3", "--fidelity", "halving", "--extend-lrs"])
    s = settings_from_args(args)
    assert (s.seeds, s.fidelity, s.extend_lrs) == ((0, 1, 2), "halving", True)
    assert settings_from_args(build_parser().parse_args(["evaluate", "adam"])).seeds is None


def test_old_stored_per_lr_dicts_still_read():
    old = {"lr": 0.1, "val_acc": 0.5, "test_acc": 0.4, "loss": 1.0, "diverged": False}
    ev = Evaluation.from_dict({"rule": "g", "task": "mnist1d", "reward": 0.5, "status": "ok", "per_lr": [old]})
    assert ev.per_lr == [LrResult(0.1, 0.5, 0.4, 1.0)] and ev.stopped_at is None and ev.seed_rewards == []


def test_a_multi_seed_search_scores_rules_by_their_mean_over_seeds():
    from optsearch.dsl import Rule
    from optsearch.engine import search

    result = search(task="digits", strategy="random", budget=2, steps=8, batch_size=32, lrs=[0.1], seeds=2,
                    baselines=("g",), fidelity="full", extend_lrs=False)
    for trial in result.trials:
        again = evaluate(Rule.from_tokens(trial.tokens), task="digits", steps=8, batch_size=32, lrs=[0.1], seeds=[0, 1])
        assert trial.reward == again.reward


def test_sequential_halving_keeps_a_rules_rates_that_can_still_win_and_they_train_as_at_full_fidelity():
    spec = "tests/tasks/example_task.py:make_task"  # not an MLP: members train one after another
    kw = dict(task=spec, steps=20, lrs=[1e-3, 1e-2, 1e-1], seed=0)
    (full, _), (adam, hopeless) = evaluate(["adam", "-g"], **kw), evaluate(["adam", "-g"], fidelity="halving", **kw)
    policy = halving_policy(Settings(**kw, fidelity="halving").resolved())
    first = min(policy.floors)
    assert hopeless.stopped_at == first == 4 and all(p.stopped_at == 4 for p in hopeless.per_lr)
    keep = policy.keep(first, [p.curve[0] for p in full.per_lr])  # the stacked trainer's decision, on full's curves
    assert 0 < sum(keep) < len(keep)
    for h, f, kept in zip(adam.per_lr, full.per_lr, keep, strict=True):
        assert (h.stopped_at == first) is not kept and h.curve == f.curve[:len(h.curve)]
        assert h.stopped_at is not None or h == f  # trained to the end: bit for bit full fidelity's
    assert adam.stopped_at is None and any(p.stopped_at is None for p in adam.per_lr)
