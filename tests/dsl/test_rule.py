import pytest
import torch

from optsearch.dsl import Rule, RuleError, limits, parse, vocab
from optsearch.optim.zoo import PAPER_RULES

TRICKY = [
    "-g^2", "-(-g)", "g - (m - v)", "g^m^v", "(g^m)^v", "(-g)^m", "g^-m", "log|g + m| * sqrt|v|",
    "cd(2) * g + rd * m + cd * rd(3)", "g * (1e-4*w)", "1e-4*w / g", "-(1e-4*w)", "g / (m / v)", "2 * g",
    "sign(g) * ld", "eps_t + g", "1e-1*w", "sign(g + m)", "exp(exp(g))", "g / m / v", "g * m * v",
]


@pytest.mark.parametrize("text", list(PAPER_RULES) + TRICKY)
def test_infix_round_trips_through_text_and_tokens(text):
    rule = parse(text)
    assert parse(str(rule)) == rule
    assert Rule.from_tokens(rule.tokens) == rule
    assert str(Rule.from_tokens(rule.tokens)) == str(rule)
    assert len(rule.tokens) == 5 * len(rule.groups)


def test_powersign_is_two_groups_of_five_tokens():
    rule = parse("g * exp(sign(g) * sign(m))")
    assert rule.groups == (("sign(g)", "sign(m)", "x", "x", "mul"), ("g", "o0", "x", "exp", "mul"))
    assert rule.state == ("m",)
    assert rule.operands == {"g", "sign(g)", "sign(m)"}


def test_equal_meaning_means_equal_rule_whatever_the_grouping():
    keep_left = Rule.from_tokens(["g", "v", "x", "exp", "keep"])
    assert keep_left == parse("g") and hash(keep_left) == hash(parse("g"))
    sign_as_unary = Rule.from_tokens(["g", "m", "sign", "x", "mul"])
    assert sign_as_unary == parse("sign(g) * m")
    assert Rule.from_tokens(["g", "2", "x", "x", "pow"]) == parse("g^2")


def test_unused_groups_do_not_count():
    rule = Rule.from_tokens(["v", "v", "x", "x", "add", "g", "m", "x", "x", "mul"])
    assert rule.state == ("m",)
    assert rule == parse("g * m")


def test_state_and_flags():
    assert parse("adam").state == ("m", "v")
    assert parse("y + g").state == ("y",)
    assert parse("g").state == ()
    assert parse("g * ld").needs_total_steps and not parse("g").needs_total_steps
    assert parse("drop(g, 0.1)").stochastic and parse("g + eps").stochastic and not parse("g * m").stochastic


def test_apply_computes_the_tree():
    g, m = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 4.0])
    rule = parse("g * exp(sign(g) * sign(m))")
    out = rule.apply({"g": g, "sign(g)": g.sign(), "sign(m)": m.sign()})
    assert torch.allclose(out, torch.tensor([1.0 * torch.e, -2.0 / torch.e]))
    assert torch.equal(parse("g / m").apply({"g": g, "m": m}), g / (m + vocab.DIV_DELTA))


def test_latex_names_the_functions():
    assert parse("g * exp(sign(g) * sign(m))").latex() == (
        r"g \cdot \exp\left(\operatorname{sign}(g) \cdot \operatorname{sign}(m)\right)")
    assert "\\sqrt" in parse("sqrt|v|").latex()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("foo(g)", "unknown function 'foo' at position 0"),
        ("bar", "unknown name 'bar' at position 0"),
        ("3*g", "number 3 is not in the vocabulary at position 0"),
        ("clip(g, 0.5)", "0.5 is not in the vocabulary at position 8"),
        ("g +", "found end of text at position 3"),
        ("", "empty rule"),
        ("   ", "empty rule"),
        ("__import__('os')", "unexpected character \"'\" at position 11"),
        ("g.real", "unexpected character '.' at position 1"),
        ("w", "w appears only scaled"),
        ("log(g)", "write log|x|"),
        ("cd(7)", "period 7 is not in the vocabulary"),
        ("g" * (limits.MAX_TEXT_LENGTH + 1), f"at most {limits.MAX_TEXT_LENGTH}"),
        ("(" * 500 + "g" + ")" * 500, "nested deeper"),
        ("g^" * 600 + "g", "nested deeper"),
        ("g+" * 900 + "g", "more than 256"),
        ("g m", "unexpected 'm' after a complete expression at position 2"),
    ],
)
def test_bad_text_raises_rule_error_saying_what_and_where(text, fragment):
    with pytest.raises(RuleError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_text_is_a_rule_error():
    with pytest.raises(RuleError, match="must be text"):
        parse(42)


@pytest.mark.parametrize(
    "tokens, fragment",
    [
        (["g", "m", "x", "x"], "5 tokens per group"),
        (["g", "o0", "x", "x", "add"], "group 0 cannot refer"),
        (["g", "m", "x", "cube", "add"], "'cube' is not a unary"),
        (["g", "m", "x", "x", "min"], "'min' is not a binary"),
        (["g", "m", "x", "x", "add", "o1", "g", "x", "x", "add"], "'o1' is not an operand here"),
        (["g", "g", "x", "x", "add"] + sum(([f"o{k}", f"o{k}", "x", "x", "add"] for k in range(20)), []),
         "more than 256 functions"),
    ],
)
def test_bad_tokens_raise_rule_error(tokens, fragment):
    with pytest.raises(RuleError, match=fragment):
        Rule.from_tokens(tokens)


def test_vocabulary_matches_the_paper():
    assert len(vocab.BASE_OPERANDS) == 17
    assert len(vocab.UNARY) == 12
    assert len(vocab.BINARY) == 6
    assert {"ld", "cd", "rd", "eps_t"} <= set(vocab.OPERANDS)


@pytest.mark.parametrize("text, expected", [("y * 1e-2*w", "y * (1e-2*w)"), ("y / 1e-2*w", "y / (1e-2*w)"),
                                            ("w*1e-3 + g", "1e-3*w + g")])
def test_scaled_weight_binds_as_one_operand(text, expected):
    assert str(parse(text)) == expected
