"""The language is exact: every input parses to exactly what it says or raises RuleError, and every rule
round-trips through its text and its tokens, however it was built."""

import json
import re

import pytest

from optsearch.dsl import Rule, RuleError, limits, parse, vocab
from optsearch.dsl.expr import Apply1, Apply2, Expr, Leaf, binary, unary


@pytest.mark.parametrize("text", ["g*2*w", "g * 2 * w * m", "2*w", "g / 2*w", "w*2", "g*1*w + m"])
def test_a_number_that_is_not_a_weight_scale_before_w_is_an_error_not_dropped(text):
    with pytest.raises(RuleError, match="not a weight scale.*allowed: 1e-4\\*w, 1e-3\\*w, 1e-2\\*w, 1e-1\\*w"):
        parse(text)


@pytest.mark.parametrize("text, expected", [("g*1e-2*w*2", "g * (1e-2*w) * 2"), ("g * 0.01*w", "g * (1e-2*w)"),
                                            ("w * 1e-1 * g", "1e-1*w * g"), ("g^2.0", "g^2"),
                                            ("drop(g, .5)", "drop(g, 0.5)")])
def test_numbers_mean_their_exact_value(text, expected):
    assert str(parse(text)) == expected


@pytest.mark.parametrize("text", ["drop(g, 0.30000000000000001)", "clip(g, 0.000099999999999999999)",
                                  "g^2.0000000000000001", "g * 1e99999999999999999999", "cd(1e-99999999999999999999)"])
def test_numbers_that_merely_round_to_a_vocabulary_number_are_errors(text):
    with pytest.raises(RuleError, match="not in the vocabulary"):
        parse(text)


@pytest.mark.parametrize("text", ["g*٢", "g*２", "g*²", "g^٣", "clip(g, ١e-4)", "g\u2003+ m", "g +\u00a0m", "ｇ",
                                  "g\u2028"])
def test_non_ascii_digits_and_spaces_are_errors(text):
    with pytest.raises(RuleError, match="unexpected character"):
        parse(text)


@pytest.mark.parametrize(
    "tokens, fragment",
    [
        (None, "sequence of strings, not NoneType"),
        (5, "sequence of strings, not int"),
        ("g m x x add", "sequence of strings, not str"),
        (b"gmxxa", "sequence of strings, not bytes"),
        ([1, "m", "x", "x", "add"], "tokens are strings, got int"),
        (["g", "m", ["x"], "x", "add"], "'x'\\] is not a unary"),
        (["g", "m", "x", "x", "add", "o٠", "g", "x", "x", "add"], "'o٠' is not an operand here"),
        (["g", "m", "x", "x", "add", "o²", "g", "x", "x", "add"], "'o²' is not an operand here"),
        (["g", "m", "x", "x", "add", "o00", "g", "x", "x", "add"], "'o00' is not an operand here"),
        (["g", "m", "x", "x", "add", "o7", "g", "x", "x", "add"], "'o7' is not an operand here"),
        (iter(lambda: "g", None), f"at most {limits.MAX_GROUPS} groups"),
    ],
)
def test_junk_tokens_raise_rule_error(tokens, fragment):
    with pytest.raises(RuleError, match=fragment):
        Rule.from_tokens(tokens)


def _doubling(groups: int) -> list[str]:
    """o0 = exp(g) + exp(m), o_k = o_{k-1} * o_{k-1}: 2^(k+2) - 1 functions from 5k tokens."""
    tokens = ["g", "m", "exp", "exp", "add"]
    for k in range(1, groups):
        tokens += [vocab.group_ref(k - 1), vocab.group_ref(k - 1), "x", "x", "mul"]
    return tokens


def _round_trips(rule: Rule) -> None:
    assert parse(str(rule)) == rule
    assert Rule.from_tokens(rule.tokens) == rule
    assert Rule.from_tokens(json.loads(json.dumps(parse(str(rule)).tokens))) == rule


def test_a_rule_of_shared_groups_round_trips_through_text_and_tokens():
    rule = Rule.from_tokens(_doubling(7))  # 255 functions: its layout from text needs 127 groups
    assert rule.complexity == 255 + 128
    _round_trips(rule)


def test_a_rule_of_shared_groups_too_big_to_print_is_refused_naming_the_limit():
    with pytest.raises(RuleError, match=f"more than {limits.MAX_FUNCTIONS} functions and operators"):
        Rule.from_tokens(_doubling(8))


def _spine(fns: list[str], side: int = 0) -> Expr:
    """A chain of the given functions around v, the chain on the given side of binaries (m on the other)."""
    tree = Leaf("v")
    for fn in fns:
        if fn in vocab.BINARY:
            tree = binary(fn, tree, Leaf("m")) if side == 0 else binary(fn, Leaf("m"), tree)
        else:
            tree = unary(fn, tree)
    return tree


FUNCTIONS = [f for f in [*vocab.UNARY, *vocab.BINARY] if f not in ("x", "keep")]


@pytest.mark.parametrize("side", [0, 1])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_the_deepest_rules_round_trip(fn, side):
    """Every shape of the deepest chains, alone and alternating with negation (the most brackets)."""
    for fns in ([fn] * limits.MAX_DEPTH, [fn, "-x"] * (limits.MAX_DEPTH // 2), ["-x", fn] * (limits.MAX_DEPTH // 2)):
        rule = Rule.from_expr(_spine(fns, side))
        _round_trips(rule)
    with pytest.raises(RuleError, match=f"nests functions {limits.MAX_DEPTH + 1} deep"):
        Rule.from_expr(_spine([fn] * (limits.MAX_DEPTH + 1), side))


def test_a_chain_of_groups_deeper_than_the_limit_is_refused():
    tokens = ["g", "g", "exp", "x", "keep"]
    for k in range(1, limits.MAX_DEPTH + 1):
        tokens += [vocab.group_ref(k - 1), "m", "x", "x", "add"]
    with pytest.raises(RuleError, match=f"nests functions {limits.MAX_DEPTH + 1} deep"):
        Rule.from_tokens(tokens)
    _round_trips(Rule.from_tokens(tokens[:-5]))


def test_the_longest_text_round_trips():
    """As many of the longest-printing functions as the limits allow, on the longest operands."""
    terms = [unary("clip1e-5", Leaf("sign(m)")), unary("drop0.1", Leaf("rmsprop")), unary("log", Leaf("rd(0.5)")),
             unary("-x", Leaf("1e-4*w"))] * 32
    while len(terms) > 1:  # a balanced tree of differences: brackets on every right side
        terms = [binary("sub", terms[i], terms[i + 1]) for i in range(0, len(terms), 2)]
    rule = Rule.from_expr(terms[0])
    assert len(str(rule)) > 2000  # past what the parser accepted before the limits were made one
    _round_trips(rule)


def test_a_hand_built_tree_is_put_in_canonical_form():
    assert Rule.from_expr(Apply1("sign", Leaf("g"))) == parse("sign(g)")
    assert Rule.from_expr(Apply2("keep", Apply1("x", Leaf("g")), Leaf("m"))) == parse("g")
    assert Rule.from_expr(Apply2("pow", Leaf("g"), Leaf("2"))) == parse("g^2")


@pytest.mark.parametrize("tree, fragment", [(Leaf("w"), "Leaf('w')"), (Apply1("cube", Leaf("g")), "Apply1('cube')"),
                                            (Apply2("min", Leaf("g"), Leaf("m")), "Apply2('min')"),
                                            (Apply1("exp", "g"), "str is not a node")])
def test_a_hand_built_tree_of_unknown_nodes_is_a_rule_error(tree, fragment):
    with pytest.raises(RuleError, match=re.escape(fragment)):
        Rule.from_expr(tree)
