"""A small recursive-descent parser for infix rules. Never `eval`: every name and number is checked
against the vocabulary, and every error names what is wrong, where, and what is allowed.

Grammar (`^` binds tighter than unary minus, as in mathematics: `-g^2` is `-(g^2)`):
    expr  := term (("+" | "-") term)*
    term  := neg (("*" | "/") neg)*
    neg   := "-" neg | power
    power := atom ("^" neg)?
    atom  := NUMBER | NAME | NAME "(" expr ["," NUMBER] ")" | ("log" | "sqrt") "|" expr "|" | "(" expr ")"
The weight operands `1e-4*w` ... `1e-1*w` are single operands and bind as a unit: `y / 1e-2*w` is `y / (1e-2*w)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optsearch.dsl import vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.expr import Expr, Leaf, binary, unary

MAX_LENGTH = 2000
MAX_DEPTH = 64
MAX_NODES = 256  # functions and operators in one rule; keeps every tree walk shallow

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>[-+*/^(),|]))"
)

_NAMES = ("g", "m", "v", "y", "eps", "adam", "rmsprop", "ld", "cd", "rd", "eps_t")
_FUNCS = ("exp(x)", "log|x|", "sqrt|x|", "sign(x)", "clip(x, c)", "drop(x, p)", "cd(n)", "rd(n)")
_ALLOWED = (
    f"operands: {', '.join(o.token for o in vocab.BASE_OPERANDS)}, ld, cd, cd(n), rd, rd(n), eps_t; "
    f"functions: {', '.join(_FUNCS)}; operators: + - * / ^"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class _Num:
    """A number not yet known to be an operand (1, 2) or part of one (`1e-3*w`, `g^3`)."""

    value: float
    text: str
    pos: int


@dataclass(frozen=True)
class _W:
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise RuleError(f"unexpected character {text[bad]!r}", text, bad, _ALLOWED)
        kind = match.lastgroup
        toks.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    # --- helpers -------------------------------------------------------------------------------
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, msg: str, pos: int, allowed: str | None = None) -> RuleError:
        return RuleError(msg, self.text, pos, allowed)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels", self.peek().pos)

    def grow(self, node: Expr) -> Expr:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"rule has more than {MAX_NODES} functions and operators", self.peek().pos)
        return node

    def expect(self, op: str) -> _Tok:
        tok = self.next()
        if tok.text != op or tok.kind != "op":
            found = "end of text" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected {op!r} but found {found}", tok.pos)
        return tok

    def expr_of(self, node: Expr | _Num | _W) -> Expr:
        """Turn a parsed node into an expression, rejecting numbers and `w` that stand alone."""
        if isinstance(node, _Num):
            if node.value in (1.0, 2.0):
                return Leaf(str(int(node.value)))
            raise self.fail(
                f"number {node.text} is not in the vocabulary",
                node.pos,
                "the constants 1 and 2; 1e-4, 1e-3, 1e-2, 1e-1 only in c*w; 2 and 3 only in g^2, g^3; "
                "clip thresholds 1e-5, 1e-4, 1e-3; drop probabilities 0.1, 0.3, 0.5",
            )
        if isinstance(node, _W):
            raise self.fail("the weight w appears only scaled", node.pos, "1e-4*w, 1e-3*w, 1e-2*w, 1e-1*w")
        return node

    # --- grammar -------------------------------------------------------------------------------
    def parse(self) -> Expr:
        if not self.text.strip():
            raise self.fail("empty rule", 0, _ALLOWED)
        node = self.expr_of(self.expr())
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.text!r} after a complete expression", tok.pos)
        return node

    def expr(self) -> Expr | _Num | _W:
        self.enter()
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            fn = "add" if self.next().text == "+" else "sub"
            node = self.grow(binary(fn, self.expr_of(node), self.expr_of(self.term())))
        self.depth -= 1
        return node

    def term(self) -> Expr | _Num | _W:
        node = self.neg()
        while self.peek().kind == "op" and self.peek().text in "*/":
            op = self.next().text
            right = self.neg()
            if isinstance(right, _Num) and self.peek().text == "*" and self.toks[self.i + 1].text == "w":
                self.next()  # `x * 1e-2*w`: the scale binds to w, not to x
                right = _scaled_weight(right, _W(self.next().pos)) or right
            scaled = _scaled_weight(node, right) if op == "*" else None
            node = scaled or self.grow(binary("mul" if op == "*" else "div", self.expr_of(node), self.expr_of(right)))
        return node

    def neg(self) -> Expr | _Num | _W:
        self.enter()
        if self.peek().kind == "op" and self.peek().text == "-":
            self.next()
            node = self.grow(unary("-x", self.expr_of(self.neg())))
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self) -> Expr | _Num | _W:
        base = self.atom()
        if not (self.peek().kind == "op" and self.peek().text == "^"):
            return base
        self.next()
        exponent = self.neg()
        if base == Leaf("g") and isinstance(exponent, _Num) and exponent.value in (2.0, 3.0):
            return Leaf(f"g^{int(exponent.value)}")
        return self.grow(binary("pow", self.expr_of(base), self.expr_of(exponent)))

    def atom(self) -> Expr | _Num | _W:
        tok = self.next()
        if tok.kind == "num":
            return _Num(float(tok.text), tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "name":
            return self.name(tok)
        found = "end of text" if tok.kind == "end" else repr(tok.text)
        raise self.fail(f"expected an operand, a function or '(' but found {found}", tok.pos, _ALLOWED)

    def name(self, tok: _Tok) -> Expr | _W:
        name, nxt = tok.text, self.peek()
        call = nxt.kind == "op" and nxt.text == "("
        if name == "w" and not call:
            return _W(tok.pos)
        if name in ("log", "sqrt"):
            if not (nxt.kind == "op" and nxt.text == "|"):
                raise self.fail(f"{name} acts on the absolute value: write {name}|x|", tok.pos)
            self.next()
            arg = self.expr_of(self.expr())
            self.expect("|")
            return self.grow(unary(name, arg))
        if name in ("cd", "rd") and call:
            self.next()
            n = self.number()
            self.expect(")")
            if n.value not in vocab.DECAY_PERIODS:
                periods = ", ".join(f"{p:g}" for p in vocab.DECAY_PERIODS)
                raise self.fail(f"{name}({n.text}): period {n.text} is not in the vocabulary", n.pos, periods)
            return Leaf((vocab.cd_token if name == "cd" else vocab.rd_token)(n.value))
        if name in ("exp", "sign", "clip", "drop") and call:
            self.next()
            arg = self.expr_of(self.expr())
            if name in ("exp", "sign"):
                self.expect(")")
                return self.grow(unary(name, arg))
            self.expect(",")
            n = self.number()
            self.expect(")")
            table = vocab.CLIP_THRESHOLDS if name == "clip" else vocab.DROP_PROBS
            for text in table:
                if float(text) == n.value:
                    return self.grow(unary(f"{name}{text}", arg))
            raise self.fail(f"{name}(x, {n.text}): {n.text} is not in the vocabulary", n.pos, ", ".join(table))
        if name in _NAMES and not call:
            return Leaf(name)
        what = f"unknown function {name!r}" if call else f"unknown name {name!r}"
        raise self.fail(what, tok.pos, _ALLOWED)

    def number(self) -> _Num:
        tok = self.next()
        if tok.kind != "num":
            found = "end of text" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected a number but found {found}", tok.pos)
        return _Num(float(tok.text), tok.text, tok.pos)


def _scaled_weight(left: Expr | _Num | _W, right: Expr | _Num | _W) -> Leaf | None:
    """`c*w` or `w*c` with c one of the vocabulary's weight scales is a single operand."""
    num, w = (left, right) if isinstance(right, _W) else (right, left)
    if isinstance(w, _W) and isinstance(num, _Num):
        for token, scale in vocab.WEIGHT_SCALES.items():
            if num.value == scale:
                return Leaf(token)
    return None


def parse_expr(text: str) -> Expr:
    """Parse infix text into an expression tree; raises RuleError on any bad input."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleError(f"rule text is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    return _Parser(text).parse()
