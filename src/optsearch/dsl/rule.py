"""Rule: an update rule as the paper's token groups and as the expression tree they mean."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice

import torch
from torch import Tensor

from optsearch.dsl import expr as ex
from optsearch.dsl import fingerprint as fp
from optsearch.dsl import limits, vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.parser import parse_expr

Group = tuple[str, str, str, str, str]


@dataclass(frozen=True, eq=False)
class Rule:
    """An immutable update rule Δ; the optimizer applies w ← w − lr·Δ.

    `groups` are the paper's token groups `(op1, op2, u1, u2, b)` meaning `b(u1(op1), u2(op2))`, where an
    operand may be `o<k>`, the result of an earlier group k. Many groupings mean the same thing, so equality
    and hashing use `expr`, the tree with identities and keep-left removed: `parse(str(r)) == r` always.
    Build one with `parse(text)`, `Rule.from_tokens(tokens)` or `Rule.from_expr(tree)`; all three raise only
    RuleError and apply the same size limits (`limits`), so every rule round-trips through text and tokens.
    """

    groups: tuple[Group, ...]
    expr: ex.Expr

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> Rule:
        """A rule from its token strings. A rule whose tree would outgrow `limits` (groups that share
        results can mean an exponentially larger tree and text) is refused, so its text parses back."""
        if isinstance(tokens, str | bytes) or not isinstance(tokens, Iterable):
            raise RuleError(f"tokens are a sequence of strings, not {type(tokens).__name__}")
        tokens = list(islice(tokens, 5 * limits.MAX_GROUPS + 1))  # islice: never drain an endless iterator
        if len(tokens) > 5 * limits.MAX_GROUPS:
            raise RuleError(f"a rule has at most {limits.MAX_GROUPS} groups; got more")
        if not tokens or len(tokens) % 5:
            raise RuleError(f"a rule needs 5 tokens per group (op1, op2, u1, u2, b); got {len(tokens)} tokens")
        results: list[ex.Expr] = []
        groups = []
        for k in range(len(tokens) // 5):
            group = tuple(tokens[5 * k: 5 * k + 5])
            op1, op2, u1, u2, b = (_operand(results, k, i, t) if i < 2 else t for i, t in enumerate(group))
            for i, (token, table) in enumerate(((u1, vocab.UNARY), (u2, vocab.UNARY), (b, vocab.BINARY))):
                if not isinstance(token, str) or token not in table:
                    raise RuleError(f"group {k} slot {i + 2}: {token!r} is not a {('unary', 'unary', 'binary')[i]} "
                                    f"function", allowed=", ".join(table))
            results.append(ex.binary(b, ex.unary(u1, op1), ex.unary(u2, op2)))
            groups.append(group)
        limits.check(results[-1])
        return cls(tuple(groups), results[-1])

    @classmethod
    def from_expr(cls, tree: ex.Expr) -> Rule:
        """The rule of a tree (put in canonical form), laid out as token groups (post-order; a unary of a unary
        needs a group of its own)."""
        limits.check(tree)  # first: a hand-built tree may be too deep to walk recursively
        tree = ex.canonical(tree)
        groups: list[Group] = []

        def ref(e: ex.Expr) -> str:
            if isinstance(e, ex.Leaf):
                return e.token
            emit(e)
            return vocab.group_ref(len(groups) - 1)

        def split(e: ex.Expr) -> tuple[str, str]:
            if isinstance(e, ex.Apply1):
                return e.fn, ref(e.x)
            return "x", ref(e)

        def emit(e: ex.Expr) -> None:
            if isinstance(e, ex.Apply2):
                (u1, r1), (u2, r2) = split(e.x), split(e.y)
                groups.append((r1, r2, u1, u2, e.fn))
            else:
                u, r = split(e)
                groups.append((r, r, u, "x", "keep"))

        emit(tree)
        return cls(tuple(groups), tree)

    # --- views -----------------------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(t for g in self.groups for t in g)

    @cached_property
    def operands(self) -> frozenset[str]:
        """Operand tokens the rule's value depends on (unused groups do not count)."""
        return ex.leaves(self.expr)

    @cached_property
    def state(self) -> tuple[str, ...]:
        """Running averages the rule needs, in the order m, v, y."""
        needed = {s for t in self.operands for s in vocab.OPERANDS[t].state}
        return tuple(s for s in ("m", "v", "y") if s in needed)

    @cached_property
    def needs_total_steps(self) -> bool:
        return any(vocab.OPERANDS[t].needs_total_steps for t in self.operands)

    @cached_property
    def stochastic(self) -> bool:
        return any(vocab.OPERANDS[t].stochastic for t in self.operands) or any(
            vocab.UNARY[f].stochastic for f in ex.functions(self.expr) if f in vocab.UNARY)

    @property
    def complexity(self) -> int:
        return ex.size(self.expr)

    @cached_property
    def fingerprint(self) -> str:
        """Functional hash: equal for rules that compute the same function (`fingerprint` module)."""
        return fp.fingerprint(self.expr)

    def apply(self, values: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Δ computed elementwise from operand values (every token in `operands`; 0-dim for scalars)."""
        return ex.evaluate(self.expr, values, generator)

    def latex(self) -> str:
        return ex.to_latex(self.expr)

    def __str__(self) -> str:
        return ex.to_infix(self.expr)

    def __repr__(self) -> str:
        return f"Rule({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.expr == other.expr

    def __hash__(self) -> int:
        return hash(self.expr)


def _operand(results: Sequence[ex.Expr], k: int, slot: int, token: object) -> ex.Expr:
    if not isinstance(token, str):
        raise RuleError(f"group {k} slot {slot}: tokens are strings, got {type(token).__name__}")
    if token in vocab.OPERANDS:
        return ex.Leaf(token)
    ref = vocab.parse_group_ref(token)
    if ref is not None and ref < k:
        return results[ref]
    earlier = f", or o0..o{k - 1} (earlier groups)" if k else " (group 0 cannot refer to other groups)"
    raise RuleError(f"group {k} slot {slot}: {token!r} is not an operand here",
                    allowed=", ".join(vocab.OPERANDS) + earlier)


def rejection(rule: Rule) -> str | None:
    """Why the rule is not worth training (None if it is): non-finite, zero, or blind to the gradient."""
    return fp.rejection(rule.expr)


def parse(text: str | Rule) -> Rule:
    """Parse infix text such as `g * exp(sign(g) * sign(m))` into a Rule (a Rule is returned as is)."""
    if isinstance(text, Rule):
        return text
    return Rule.from_expr(parse_expr(text))
