import pytest
import torch

from optsearch.dsl import Rule, parse
from optsearch.strategies import STRATEGIES, make_strategy, options, state_from_bytes, state_to_bytes

NAMES = sorted(STRATEGIES)


def reward(rule: Rule) -> float:
    """A cheap deterministic reward that differs between rules."""
    return sum(len(t) for t in rule.tokens) % 7 / 7


def drive(strategy, rounds: int, n: int = 6) -> list[tuple[str, ...]]:
    """Ask n, tell them back in reverse order and in two calls; return the asked token strings."""
    asked = []
    for _ in range(rounds):
        rules = strategy.ask(n)
        asked += [r.tokens for r in rules]
        back = rules[::-1]
        strategy.tell(back[:2], [reward(r) for r in back[:2]])
        strategy.tell(back[2:], [reward(r) for r in back[2:]])
    return asked


def small(name: str, **kw):
    opts = {"ppo": dict(update_every=8, hidden=32), "reinforce": dict(update_every=8, hidden=32),
            "evolution": dict(population_size=8, sample_size=3)}.get(name, {})
    return make_strategy(name, **opts, **kw)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("groups", [1, 2, 3])
@pytest.mark.parametrize("decays", [False, True])
def test_every_asked_rule_is_a_valid_string_of_the_space(name, groups, decays):
    strategy = small(name, groups=groups, decays=decays, seed=groups)
    for tokens in drive(strategy, rounds=4):
        assert strategy.space.contains(tokens)
        Rule.from_tokens(tokens)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_and_tells_give_the_same_asks(name):
    assert drive(small(name, seed=5), 4) == drive(small(name, seed=5), 4)
    assert drive(small(name, seed=5), 4) != drive(small(name, seed=6), 4)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_through_bytes_continues_identically(name):
    original = small(name, seed=2)
    drive(original, 3)
    original.ask(3)  # left pending: the checkpoint must carry them
    restored = small(name, seed=99)
    restored.load_state_dict(state_from_bytes(state_to_bytes(original.state_dict())))
    assert drive(restored, 3) == drive(original, 3)


def test_loading_state_of_another_configuration_is_refused():
    with pytest.raises(ValueError, match="cannot be loaded"):
        small("ppo", groups=2).load_state_dict(small("ppo", groups=3).state_dict())
    with pytest.raises(ValueError, match="cannot be loaded"):
        small("ppo").load_state_dict(small("reinforce").state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_tell_accepts_rules_not_asked_and_pads_shorter_ones(name):
    strategy = small(name, groups=2)
    strategy.tell([parse("g * exp(sign(g) * sign(m))"), parse("g")], [0.9, 0.1])
    assert all(strategy.space.contains(t) for t in drive(strategy, 2))


@pytest.mark.parametrize("name", NAMES)
def test_tell_rejects_bad_input(name):
    strategy = small(name, groups=1)
    rules = strategy.ask(2)
    with pytest.raises(ValueError, match="2 rules but 1 rewards"):
        strategy.tell(rules, [1.0])
    with pytest.raises(ValueError, match="finite"):
        strategy.tell(rules, [1.0, float("nan")])
    with pytest.raises(ValueError, match="does not fit"):
        strategy.tell([parse("g * exp(sign(g) * sign(m))")], [1.0])


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_controller_updates_once_a_batch_is_told_and_forgets_told_samples(name):
    strategy = make_strategy(name, update_every=6, hidden=32)
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    rules = strategy.ask(6)
    strategy.tell(rules[:5], [1.0, 0.0, 0.5, 0.2, 0.3])
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters(), strict=True))
    strategy.tell(rules[5:], [0.7])
    assert not all(torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters(), strict=True))
    assert strategy.pending == {} and strategy.buffer == []


def test_repeated_strings_keep_one_pending_draw_each():
    strategy = make_strategy("ppo", groups=1, update_every=100, hidden=32)
    rule = strategy.ask(1)[0]
    strategy.pending[rule.tokens].append(-1.0)  # as if drawn twice
    strategy.tell([rule], [0.5])
    assert strategy.pending[rule.tokens] == [-1.0]
    strategy.tell([rule], [0.5])
    assert rule.tokens not in strategy.pending


def test_factory_passes_options_and_names_the_allowed_values():
    ppo = make_strategy("ppo", groups=3, seed=1, decays=True, lr=1e-3, clip=0.1)
    assert (ppo.space.groups, ppo.space.decays, ppo.clip, ppo.optimizer.param_groups[0]["lr"]) == (3, True, 0.1, 1e-3)
    with pytest.raises(ValueError, match="allowed: evolution, ppo, random, reinforce"):
        make_strategy("bayes")
    with pytest.raises(ValueError, match="no option clip; its options: .*population_size"):
        make_strategy("evolution", clip=0.2)
    assert "clip" in options("ppo") and "clip" not in options("reinforce")
