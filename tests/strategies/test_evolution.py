import pytest
import torch

from optsearch.dsl import Rule, parse
from optsearch.strategies import Evolution


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_mutation_keeps_validity_and_changes_one_token_or_one_group(groups):
    evo = Evolution(groups=groups, decays=True, seed=groups)
    parent = evo.space.random_tokens(evo.generator)
    for _ in range(300):
        child = evo.mutate(parent)
        assert evo.space.contains(child)
        Rule.from_tokens(child)
        changed = [i for i, (a, b) in enumerate(zip(parent, child, strict=True)) if a != b]
        assert len(changed) == 1 or len({i // 5 for i in changed}) <= 1
        parent = child


def test_warm_start_comes_first_padded_and_skips_rules_that_do_not_fit():
    zoo = ["g * exp(sign(g) * sign(m))", parse("m * exp(v)"), "(exp(sign(g)*sign(m)) + clip(g, 1e-4)) * g"]
    evo = Evolution(groups=2, population_size=4, sample_size=2, warm_start=zoo)
    first = evo.ask(3)
    assert first[:2] == [parse(zoo[0]), zoo[1]]  # the three-group rule was skipped
    assert len(first[1].tokens) == 10


def test_population_ages_out_the_oldest_and_children_come_from_the_best():
    evo = Evolution(groups=1, population_size=4, sample_size=4, group_mutation_prob=0.0)
    rules = evo.ask(4)
    evo.tell(rules, [0.1, 0.9, 0.2, 0.3])
    child = evo.ask(1)[0]  # sample_size == population: the tournament winner is the best member
    assert sum(a != b for a, b in zip(child.tokens, rules[1].tokens, strict=True)) == 1
    evo.tell([child], [0.0])
    assert [m.tokens for m in evo.population] == [r.tokens for r in rules[1:]] + [child.tokens]


def test_asks_before_any_tell_are_random_not_an_error():
    evo = Evolution(groups=2, population_size=2, sample_size=1)
    assert len(evo.ask(5)) == 5


def test_sample_size_must_fit_the_population():
    with pytest.raises(ValueError, match="sample_size"):
        Evolution(population_size=4, sample_size=5)


def test_mutation_uses_only_the_strategy_generator():
    torch.manual_seed(0)
    a = Evolution(seed=1).mutate(("g",) * 2 + ("x",) * 2 + ("mul",) + ("o0", "m", "x", "x", "add"))
    torch.manual_seed(1)
    b = Evolution(seed=1).mutate(("g",) * 2 + ("x",) * 2 + ("mul",) + ("o0", "m", "x", "x", "add"))
    assert a == b
