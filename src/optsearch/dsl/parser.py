"""A small recursive-descent parser for infix rules. Never `eval`: every name and number is checked
against the vocabulary, and every error names what is wrong, where, and what is allowed.

Grammar (`^` binds tighter than unary minus, as in mathematics: `-g^2` is `-(g^2)`):
    expr  := term (("+" | "-") term)*
    term  := neg (("*" | "/") neg)*
    neg   := "-" neg | power
    power := atom ("^" neg)?
    atom  := NUMBER | NAME | NAME "(" expr ["," NUMBER] ")" | NAME "|" expr "|" | "(" expr ")"
The weight operands `1e-4*w` ... `1e-1*w` are single operands and bind as a unit: `y / 1e-2*w` is `y / (1e-2*w)`.

What it accepts is derived from the vocabulary, mostly from the very forms the printer writes (operand
tokens, each unary's `fmt`, each binary's `symbol`), so printing and parsing cannot drift apart. Text is
ASCII: digits are 0-9 (not `٢` or `２`), whitespace is space, tab and line breaks. Numbers are compared
exactly as decimals (`2.0` is 2, `0.30000000000000001` is not 0.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from optsearch.dsl import limits, vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.expr import Expr, Leaf, binary, unary

_NUM = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_TOKEN = re.compile(rf"(?P<num>{_NUM})|(?P<name>{_NAME})|(?P<op>[-+*/^(),|])")
_SPACE = re.compile(r"[ \t\n\r\f\v]*")


def _dec(text: str) -> Decimal | None:
    """The exact value of a number's text; None for one too large for any vocabulary entry."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _lookup(table: dict[str, str], value: Decimal | None) -> str | None:
    """table[number text] for the text equal to `value` as a decimal (`1e-4` is `0.0001`), else None."""
    return next((token for text, token in table.items() if value is not None and _dec(text) == value), None)


# --- what the vocabulary lets one write, derived from it -------------------------------------------------
_OPERAND_NAMES = frozenset(t for t in vocab.OPERANDS if re.fullmatch(_NAME, t))  # g, m, adam, ld, cd, eps_t...
_CONSTANTS = {t: t for t in vocab.OPERANDS if re.fullmatch(_NUM, t)}  # 1, 2
_POWERS: dict[str, dict[str, str]] = {}  # g^2, g^3: base -> {exponent: token}
_WEIGHTS: dict[str, str] = {}  # 1e-4*w ...: scale -> token
for _t in vocab.OPERANDS:
    if _m := re.fullmatch(rf"({_NAME})\^({_NUM})", _t):
        _POWERS.setdefault(_m[1], {})[_m[2]] = _t
    elif _m := re.fullmatch(rf"({_NUM})\*({_NAME})", _t):
        _WEIGHTS[_m[1]], _W = _t, _m[2]  # _W: the weight `w`, which appears only scaled
_OPERAND_CALLS = {name: {f"{n:g}": token(n) for n in vocab.DECAY_PERIODS}
                  for name, token in vocab.PERIODIC_DECAYS.items()}  # cd(n), rd(n): name -> {period: token}
_CALLS: dict[str, dict[str | None, str]] = {}  # exp(x), clip(x, c): name -> {parameter or None: token}
_BARS: dict[str, str] = {}  # log|x|, sqrt|x|: name -> token
for _u in vocab.UNARY.values():  # "{}" (identity) and "-{}" (negation) are grammar, not names
    if _m := re.fullmatch(rf"({_NAME})\(\{{\}}(?:, ({_NUM}))?\)", _u.fmt):
        _CALLS.setdefault(_m[1], {})[_m[2]] = _u.token
    elif _m := re.fullmatch(rf"({_NAME})\|\{{\}}\|", _u.fmt):
        _BARS[_m[1]] = _u.token
_NEG = next(u.token for u in vocab.UNARY.values() if u.fmt == "-{}")
_SYMBOLS = {b.symbol: b.token for b in vocab.BINARY.values() if b.symbol}

_PERIODIC = {t for table in _OPERAND_CALLS.values() for t in table.values()} - _OPERAND_NAMES
_ALLOWED = (
    "operands: " + ", ".join([*(t for t in vocab.OPERANDS if t not in _PERIODIC), *(f"{n}(n)" for n in _OPERAND_CALLS)])
    + "; functions: " + ", ".join([*(f"{n}|x|" for n in _BARS),
                                   *(f"{n}(x)" if None in p else f"{n}(x, {'/'.join(p)})" for n, p in _CALLS.items())])
    + "; operators: " + " ".join(_SYMBOLS)
)
_NUMBERS_ALLOWED = "; ".join([
    f"the constants {', '.join(_CONSTANTS)}", f"{', '.join(_WEIGHTS)} only in c*{_W}",
    *(f"{', '.join(p)} only in {', '.join(p.values())}" for p in _POWERS.values()),
    *(f"{n}(x, c) with c in {', '.join(p)}" for n, p in _CALLS.items() if None not in p),
])


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class _Num:
    """A number not yet known to be an operand (1, 2) or part of one (`1e-3*w`, `g^3`)."""

    value: Decimal | None
    text: str
    pos: int


@dataclass(frozen=True)
class _Weight:
    """The bare weight `w`, which must be scaled."""

    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], _SPACE.match(text, 0).end()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise RuleError(f"unexpected character {text[pos]!r}", text, pos, _ALLOWED)
        kind = match.lastgroup
        toks.append(_Tok(kind, match.group(kind), pos))
        pos = _SPACE.match(text, match.end()).end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    # --- helpers -------------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def at(self, op: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.text == op

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, msg: str, pos: int, allowed: str | None = None) -> RuleError:
        return RuleError(msg, self.text, pos, allowed)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > limits.MAX_NESTING:
            raise self.fail(f"expression nested deeper than {limits.MAX_NESTING} levels", self.peek().pos)

    def expect(self, op: str) -> _Tok:
        tok = self.next()
        if tok.text != op or tok.kind != "op":
            found = "end of text" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected {op!r} but found {found}", tok.pos)
        return tok

    def expr_of(self, node: Expr | _Num | _Weight) -> Expr:
        """Turn a parsed node into an expression, rejecting numbers and `w` that stand alone."""
        if isinstance(node, _Num):
            if token := _lookup(_CONSTANTS, node.value):
                return Leaf(token)
            raise self.fail(f"number {node.text} is not in the vocabulary", node.pos, _NUMBERS_ALLOWED)
        if isinstance(node, _Weight):
            raise self.fail(f"the weight {_W} appears only scaled", node.pos, ", ".join(_WEIGHTS.values()))
        return node

    def weight(self, num: _Num, w: _Weight) -> Leaf:
        """`c*w` (or `w*c`): the operand, if c is one of the vocabulary's weight scales."""
        if token := _lookup(_WEIGHTS, num.value):
            return Leaf(token)
        raise self.fail(f"{num.text}*{_W}: {num.text} is not a weight scale", num.pos, ", ".join(_WEIGHTS.values()))

    # --- grammar -------------------------------------------------------------------------------
    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise self.fail("empty rule", 0, _ALLOWED)
        node = self.expr_of(self.expr())
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.text!r} after a complete expression", tok.pos)
        return node

    def expr(self) -> Expr | _Num | _Weight:
        self.enter()
        node = self.term()
        while self.at("+") or self.at("-"):
            fn = _SYMBOLS[self.next().text]
            node = binary(fn, self.expr_of(node), self.expr_of(self.term()))
        self.depth -= 1
        return node

    def term(self) -> Expr | _Num | _Weight:
        node = self.neg()
        while self.at("*") or self.at("/"):
            op = self.next().text
            right = self.neg()
            if isinstance(right, _Num) and self.at("*") and self.peek(1) == _Tok("name", _W, self.peek(1).pos):
                self.next()  # `x * 1e-2*w`: the scale binds to w, not to x
                right = self.weight(right, _Weight(self.next().pos))
            if op == "*" and isinstance(node, _Num) and isinstance(right, _Weight):
                node = self.weight(node, right)
            elif op == "*" and isinstance(node, _Weight) and isinstance(right, _Num):
                node = self.weight(right, node)
            else:
                node = binary(_SYMBOLS[op], self.expr_of(node), self.expr_of(right))
        return node

    def neg(self) -> Expr | _Num | _Weight:
        self.enter()
        if self.at("-"):
            self.next()
            node = unary(_NEG, self.expr_of(self.neg()))
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self) -> Expr | _Num | _Weight:
        base = self.atom()
        if not self.at("^"):
            return base
        self.next()
        exponent = self.neg()
        if isinstance(base, Leaf) and isinstance(exponent, _Num) and (
                token := _lookup(_POWERS.get(base.token, {}), exponent.value)):
            return Leaf(token)
        return binary(_SYMBOLS["^"], self.expr_of(base), self.expr_of(exponent))

    def atom(self) -> Expr | _Num | _Weight:
        tok = self.next()
        if tok.kind == "num":
            return _Num(_dec(tok.text), tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "name":
            return self.name(tok)
        found = "end of text" if tok.kind == "end" else repr(tok.text)
        raise self.fail(f"expected an operand, a function or '(' but found {found}", tok.pos, _ALLOWED)

    def name(self, tok: _Tok) -> Expr | _Weight:
        name = tok.text
        call = self.at("(")
        if name == _W and not call:
            return _Weight(tok.pos)
        if name in _BARS:
            if not self.at("|"):
                raise self.fail(f"{name} acts on the absolute value: write {name}|x|", tok.pos)
            self.next()
            arg = self.expr_of(self.expr())
            self.expect("|")
            return unary(_BARS[name], arg)
        if name in _OPERAND_CALLS and call:
            self.next()
            n = self.number()
            self.expect(")")
            if not (token := _lookup(_OPERAND_CALLS[name], n.value)):
                periods = ", ".join(_OPERAND_CALLS[name])
                raise self.fail(f"{name}({n.text}): period {n.text} is not in the vocabulary", n.pos, periods)
            return Leaf(token)
        if name in _CALLS and call:
            self.next()
            arg = self.expr_of(self.expr())
            table = _CALLS[name]
            if None in table:
                self.expect(")")
                return unary(table[None], arg)
            self.expect(",")
            n = self.number()
            self.expect(")")
            if not (token := _lookup(table, n.value)):
                raise self.fail(f"{name}(x, {n.text}): {n.text} is not in the vocabulary", n.pos, ", ".join(table))
            return unary(token, arg)
        if name in _OPERAND_NAMES and not call:
            return Leaf(name)
        what = f"unknown function {name!r}" if call else f"unknown name {name!r}"
        raise self.fail(what, tok.pos, _ALLOWED)

    def number(self) -> _Num:
        tok = self.next()
        if tok.kind != "num":
            found = "end of text" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected a number but found {found}", tok.pos)
        return _Num(_dec(tok.text), tok.text, tok.pos)


def parse_expr(text: str) -> Expr:
    """Parse infix text into an expression tree; raises RuleError on any bad input. The tree's size is
    checked against `limits` by Rule, which every parsed rule goes through."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, not {type(text).__name__}")
    if len(text) > limits.MAX_TEXT_LENGTH:
        raise RuleError(f"rule text is {len(text)} characters long; at most {limits.MAX_TEXT_LENGTH} are allowed")
    return _Parser(text).parse()
