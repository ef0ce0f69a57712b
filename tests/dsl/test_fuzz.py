"""Fuzzing the language: generated text and token lists, seeded. Only RuleError may escape, and whatever is
accepted round-trips through its text and its tokens."""

import random

import pytest

from optsearch.dsl import Rule, RuleError, parse, vocab
from optsearch.optim.zoo import PAPER_RULES

_PIECES = [
    *vocab.OPERANDS, "w", "exp(", "log|", "sqrt|", "sign(", "clip(", "drop(", "cd(", "rd(", "|", "(", ")", ", ",
    "+", "-", "*", "/", "^", " ", "1", "2", "3", "0.1", "0.3", "1e-4", "1e-5", "2.0", ".5", "07", "1e99999999999999",
    "foo", "x", "o1", "_", ".", "'", "\\", "é", "٢", "２", "²", "\u2003", "\x00", "\n", "__import__", ";", "[", "]",
]
_JUNK_TOKENS = [None, 1, 1.5, b"g", ["g"], ("m",), "", "G", " g", "o", "o01", "o٠", "o²", "o-1", "clip", "exp(g)",
                "sign(v)", "cd(7)", "x ", "ADD", "o99"]


def _valid_tokens(rng: random.Random) -> list[str]:
    tokens = []
    for k in range(rng.randint(1, 8)):
        operands = vocab.operand_choices(k, decays=True)
        tokens += [rng.choice(operands), rng.choice(operands), rng.choice(list(vocab.UNARY)),
                   rng.choice(list(vocab.UNARY)), rng.choice(list(vocab.BINARY))]
    return tokens


def _text(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
    base = rng.choice(PAPER_RULES) if rng.random() < 0.5 else _rule_text(rng)
    chars = list(base)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(chars) + 1)
        action = rng.randrange(4)
        if action == 0 and i < len(chars):
            del chars[i]
        elif action == 1:
            chars.insert(i, rng.choice(_PIECES))
        elif action == 2 and i < len(chars):
            chars[i] = rng.choice(_PIECES)
        else:
            j = rng.randrange(len(chars) + 1)
            chars[i:i] = chars[min(i, j):max(i, j)]
    return "".join(chars)


def _rule_text(rng: random.Random) -> str:
    try:
        return str(Rule.from_tokens(_valid_tokens(rng)))
    except RuleError:
        return "g"


def _tokens(rng: random.Random) -> object:
    tokens = _valid_tokens(rng)
    action = rng.randrange(6)
    if action == 0:
        return tokens
    if action == 1:
        return tokens[: rng.randrange(len(tokens))] + tokens[: rng.randrange(4)]  # wrong lengths
    if action == 2:
        tokens[rng.randrange(len(tokens))] = rng.choice(_JUNK_TOKENS)
        return tokens
    if action == 3:
        pool = [*vocab.OPERANDS, *vocab.UNARY, *vocab.BINARY, *(f"o{k}" for k in range(9)), *_JUNK_TOKENS]
        return [rng.choice(pool) for _ in range(5 * rng.randint(1, 4))]
    if action == 4:
        return rng.choice([None, 7, "g m x x add", b"g", {"g": 1}, iter(tokens), tuple(tokens), 3.5])
    return [rng.choice(_JUNK_TOKENS) for _ in range(5)]


def _accepted_round_trips(rule: Rule) -> None:
    text = str(rule)
    assert parse(text) == rule, text
    assert str(parse(text)) == text
    assert Rule.from_tokens(rule.tokens) == rule, text
    assert Rule.from_tokens(parse(text).tokens) == rule, text


def _fuzz(seed: int, cases: int) -> tuple[int, int]:
    """(rules accepted, inputs refused) over `cases` texts and `cases` token lists."""
    rng = random.Random(seed)
    accepted = refused = 0
    for _ in range(cases):
        for build, make in ((parse, _text), (Rule.from_tokens, _tokens)):
            arg = make(rng)
            try:
                rule = build(arg)
            except RuleError as err:
                assert "\n" not in str(err), str(err)  # one line
                refused += 1
                continue
            _accepted_round_trips(rule)
            accepted += 1
    return accepted, refused


def test_fuzz_only_rule_error_escapes_and_accepted_rules_round_trip():
    accepted, refused = _fuzz(seed=0, cases=300)
    assert accepted > 60 and refused > 300  # both outcomes exercised


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_fuzz_many(seed):
    accepted, refused = _fuzz(seed=seed, cases=4_000)  # 2·10^4 cases in all, each a text and a token list
    assert accepted > 800 and refused > 4_000
