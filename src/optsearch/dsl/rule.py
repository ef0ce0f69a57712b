"""Rule: an update rule as the paper's token groups and as the expression tree they mean."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from optsearch.dsl import expr as ex
from optsearch.dsl import vocab
from optsearch.dsl.errors import RuleError
from optsearch.dsl.parser import parse_expr

Group = tuple[str, str, str, str, str]
MAX_GROUPS = 64
MAX_NODES = 1024


@dataclass(frozen=True, eq=False)
class Rule:
    """An immutable update rule Δ; the optimizer applies w ← w − lr·Δ.

    `groups` are the paper's token groups `(op1, op2, u1, u2, b)` meaning `b(u1(op1), u2(op2))`, where an
    operand may be `o<k>`, the result of an earlier group k. Many groupings mean the same thing, so equality
    and hashing use `expr`, the tree with identities and keep-left removed: `parse(str(r)) == r` always.
    Build one with `parse(text)`, `Rule.from_tokens(tokens)` or `Rule.from_expr(tree)`.
    """

    groups: tuple[Group, ...]
    expr: ex.Expr

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> Rule:
        tokens = list(tokens)
        if not tokens or len(tokens) % 5:
            raise RuleError(f"a rule needs 5 tokens per group (op1, op2, u1, u2, b); got {len(tokens)} tokens")
        if len(tokens) > 5 * MAX_GROUPS:
            raise RuleError(f"a rule has at most {MAX_GROUPS} groups; got {len(tokens) // 5}")
        results: list[ex.Expr] = []
        sizes: list[int] = []  # tree sizes; groups may share results, so a tree can outgrow its tokens
        groups = []
        for k in range(len(tokens) // 5):
            group = tuple(tokens[5 * k: 5 * k + 5])
            op1, op2, u1, u2, b = (_operand(results, k, i, t) if i < 2 else t for i, t in enumerate(group))
            for i, (token, table) in enumerate(((u1, vocab.UNARY), (u2, vocab.UNARY), (b, vocab.BINARY))):
                if not isinstance(token, str) or token not in table:
                    raise RuleError(f"group {k} slot {i + 2}: {token!r} is not a {('unary', 'unary', 'binary')[i]} "
                                    f"function", allowed=", ".join(table))
            refs = [vocab.parse_group_ref(t) for t in group[:2] if t not in vocab.OPERANDS]
            sizes.append(3 + sum(sizes[r] for r in refs))
            if sizes[-1] > MAX_NODES:
                raise RuleError(f"group {k}: the rule's expression grows past {MAX_NODES} nodes")
            results.append(ex.binary(b, ex.unary(u1, op1), ex.unary(u2, op2)))
            groups.append(group)
        return cls(tuple(groups), results[-1])

    @classmethod
    def from_expr(cls, tree: ex.Expr) -> Rule:
        """Lay a tree out as token groups (post-order; a unary of a unary needs a group of its own)."""
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
        if len(groups) > MAX_GROUPS:
            raise RuleError(f"a rule has at most {MAX_GROUPS} groups; this one needs {len(groups)}")
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

    @property
    def needs_total_steps(self) -> bool:
        return any(vocab.OPERANDS[t].needs_total_steps for t in self.operands)

    @property
    def stochastic(self) -> bool:
        return any(vocab.OPERANDS[t].stochastic for t in self.operands) or any(
            vocab.UNARY[f].stochastic for f in ex.functions(self.expr) if f in vocab.UNARY)

    @property
    def complexity(self) -> int:
        return ex.size(self.expr)

    @cached_property
    def fingerprint(self) -> str:
        from optsearch.dsl.fingerprint import fingerprint

        return fingerprint(self)

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


def parse(text: str | Rule) -> Rule:
    """Parse infix text such as `g * exp(sign(g) * sign(m))` into a Rule (a Rule is returned as is)."""
    if isinstance(text, Rule):
        return text
    return Rule.from_expr(parse_expr(text))
