import pytest
import torch

from optsearch.dsl import Rule, parse, vocab
from optsearch.strategies import TokenSpace


@pytest.mark.parametrize("groups", [1, 2, 3])
@pytest.mark.parametrize("decays", [False, True])
def test_slots_follow_the_slot_kinds_and_earlier_group_references(groups, decays):
    space = TokenSpace(groups, decays)
    assert space.length == 5 * groups
    for k in range(groups):
        op1, op2, u1, u2, b = space.slots[5 * k: 5 * k + 5]
        assert list(op1) == list(op2) == vocab.operand_choices(k, decays)
        assert set(u1) == set(u2) == set(vocab.UNARY)
        assert set(b) == set(vocab.BINARY)
    assert space.mask.sum(1).tolist() == [len(c) for c in space.slots]


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_random_strings_are_valid_rules(groups):
    space, gen = TokenSpace(groups, decays=True), torch.Generator().manual_seed(0)
    for _ in range(200):
        tokens = space.random_tokens(gen)
        assert space.contains(tokens)
        Rule.from_tokens(tokens)


def test_fit_pads_shorter_rules_without_changing_their_meaning():
    rule = parse("g * m")  # one group
    fitted = TokenSpace(3).fit(rule.tokens)
    assert len(fitted) == 15 and fitted[:5] == rule.tokens
    assert Rule.from_tokens(fitted) == rule


def test_fit_rejects_rules_that_do_not_fit():
    powersign = parse("g * exp(sign(g) * sign(m))")  # two groups
    assert TokenSpace(1).fit(powersign.tokens) is None
    assert TokenSpace(2).fit(parse("g * ld").tokens) is None  # decay operand, decays off
    assert TokenSpace(2, decays=True).fit(parse("g * ld").tokens) is not None
    assert TokenSpace(2).fit(("g", "m", "x")) is None


def test_groups_must_be_positive():
    with pytest.raises(ValueError, match="groups"):
        TokenSpace(0)


def test_the_papers_addsign_with_linear_decay_needs_the_four_groups_the_cli_allows():
    from optsearch.cli import MAX_CLI_GROUPS
    from optsearch.optim.zoo import resolve

    tokens = resolve("addsign-ld").tokens
    assert TokenSpace(MAX_CLI_GROUPS, decays=True).fit(tokens) is not None
    assert TokenSpace(MAX_CLI_GROUPS - 1, decays=True).fit(tokens) is None
    assert TokenSpace(MAX_CLI_GROUPS, decays=False).fit(tokens) is None  # ld is a decay operand
