"""Expression trees: the meaning of a rule, independent of how its tokens were grouped.

Many token strings map to one tree (identity unary and keep-left vanish; `sign(g)` applied as a unary
becomes the operand `sign(g)`), so a tree is what rules are compared and printed by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from optsearch.dsl import vocab
from optsearch.dsl.errors import RuleError


@dataclass(frozen=True)
class Leaf:
    token: str  # an operand token from vocab.OPERANDS


@dataclass(frozen=True)
class Apply1:
    fn: str  # a vocab.UNARY token other than "x"
    x: Expr


@dataclass(frozen=True)
class Apply2:
    fn: str  # a vocab.BINARY token other than "keep"
    x: Expr
    y: Expr


Expr = Leaf | Apply1 | Apply2

# Operands that are a function applied to another operand: the tree always uses the operand.
_AS_OPERAND_1 = {("sign", "g"): "sign(g)", ("sign", "m"): "sign(m)"}
_AS_OPERAND_2 = {("pow", "g", "2"): "g^2", ("pow", "g", "3"): "g^3"}


def unary(fn: str, x: Expr) -> Expr:
    """Build `fn(x)` in canonical form."""
    if fn == "x":
        return x
    if isinstance(x, Leaf) and (fn, x.token) in _AS_OPERAND_1:
        return Leaf(_AS_OPERAND_1[fn, x.token])
    return Apply1(fn, x)


def binary(fn: str, x: Expr, y: Expr) -> Expr:
    """Build `fn(x, y)` in canonical form."""
    if fn == "keep":
        return x
    if isinstance(x, Leaf) and isinstance(y, Leaf) and (fn, x.token, y.token) in _AS_OPERAND_2:
        return Leaf(_AS_OPERAND_2[fn, x.token, y.token])
    return Apply2(fn, x, y)


def canonical(e: Expr) -> Expr:
    """The canonical form of a tree built by hand, checking every node names a vocabulary entry."""
    if isinstance(e, Leaf) and e.token in vocab.OPERANDS:
        return e
    if isinstance(e, Apply1) and e.fn in vocab.UNARY:
        return unary(e.fn, canonical(e.x))
    if isinstance(e, Apply2) and e.fn in vocab.BINARY:
        return binary(e.fn, canonical(e.x), canonical(e.y))
    what = getattr(e, "token", getattr(e, "fn", None))
    raise RuleError(f"{type(e).__name__}({what!r}) is not a node of a rule's tree",
                    allowed="Leaf(operand), Apply1(unary, x), Apply2(binary, x, y) with tokens from vocab")


def leaves(e: Expr) -> frozenset[str]:
    if isinstance(e, Leaf):
        return frozenset((e.token,))
    if isinstance(e, Apply1):
        return leaves(e.x)
    return leaves(e.x) | leaves(e.y)


def size(e: Expr) -> int:
    """Number of nodes: the complexity measure of a rule."""
    if isinstance(e, Leaf):
        return 1
    if isinstance(e, Apply1):
        return 1 + size(e.x)
    return 1 + size(e.x) + size(e.y)


def functions(e: Expr) -> frozenset[str]:
    if isinstance(e, Leaf):
        return frozenset()
    if isinstance(e, Apply1):
        return functions(e.x) | {e.fn}
    return functions(e.x) | functions(e.y) | {e.fn}


def evaluate(e: Expr, values: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
    """Compute the tree elementwise; `values` maps every leaf token to a tensor (0-dim for scalars).

    Intermediates the evaluation created itself are overwritten in place (the same kernels, so the same bits as
    out-of-place ops): a rule then allocates about one tensor instead of one per node. Leaves are never written.
    """
    return _evaluate(e, values, generator)[0]


def _evaluate(e: Expr, values: Mapping[str, Tensor], generator: torch.Generator | None) -> tuple[Tensor, bool]:
    """(value, whether this evaluation owns it and may overwrite it)."""
    if isinstance(e, Leaf):
        return values[e.token], False
    if isinstance(e, Apply1):
        x, owned = _evaluate(e.x, values, generator)
        fn = vocab.UNARY[e.fn]
        return (fn.inplace if owned else fn.fn)(x, generator), True
    (x, x_owned), (y, y_owned) = _evaluate(e.x, values, generator), _evaluate(e.y, values, generator)
    fn = vocab.BINARY[e.fn]
    if x_owned and _fits(x, y):
        return fn.inplace(x, y), True
    if y_owned and _fits(y, x) and e.fn in ("add", "mul"):  # exactly commutative in IEEE arithmetic
        return fn.inplace(y, x), True
    return fn.fn(x, y), True


def _fits(out: Tensor, other: Tensor) -> bool:
    """Whether `out op= other` gives the result `out op other` would (same shape and dtype). Written out, not
    with torch.broadcast_shapes: that takes ~90 µs a call on CPUs, and a rule's update makes several per step."""
    fits_shape = other.dim() <= out.dim() and all(o in (1, n) for o, n in zip(reversed(other.shape),
                                                                               reversed(out.shape), strict=False))
    return fits_shape and torch.result_type(out, other) == out.dtype


# Precedence for printing: + - (1) < * / (2) < unary minus (3) < ^ (4) < atoms (5).
_PREC = {"add": 1, "sub": 1, "mul": 2, "div": 2, "pow": 4}
_LEAF_PREC = {"g^2": 4, "g^3": 4, **{t: 2 for t in vocab.WEIGHT_SCALES}}


def _prec(e: Expr) -> int:
    if isinstance(e, Leaf):
        return _LEAF_PREC.get(e.token, 5)
    if isinstance(e, Apply1):
        return 3 if e.fn == "-x" else 5
    return _PREC[e.fn]


def to_infix(e: Expr) -> str:
    """Readable infix with the fewest parentheses that still parse back to the same tree."""
    if isinstance(e, Leaf):
        return e.token
    if isinstance(e, Apply1):
        if e.fn == "-x":
            inner = to_infix(e.x)
            wrap = _prec(e.x) < 3 or (isinstance(e.x, Apply1) and e.x.fn == "-x")
            return f"-({inner})" if wrap else f"-{inner}"
        return vocab.UNARY[e.fn].fmt.format(to_infix(e.x))
    p = _PREC[e.fn]
    left, right = to_infix(e.x), to_infix(e.y)
    if e.fn == "pow":  # right-associative; its right side may be a unary minus
        left_wrap, right_wrap = _prec(e.x) <= p, _prec(e.y) < 3
    else:
        left_wrap, right_wrap = _prec(e.x) < p, _prec(e.y) <= p
    right_wrap = right_wrap or (e.fn != "pow" and isinstance(e.y, Apply1) and e.y.fn == "-x")  # `a - (-m)`
    left = f"({left})" if left_wrap else left
    right = f"({right})" if right_wrap else right
    sym = vocab.BINARY[e.fn].symbol
    return f"{left}^{right}" if e.fn == "pow" else f"{left} {sym} {right}"


def to_latex(e: Expr) -> str:
    if isinstance(e, Leaf):
        return vocab.OPERANDS[e.token].latex
    if isinstance(e, Apply1):
        inner = to_latex(e.x)
        if e.fn == "-x" and (_prec(e.x) < 3 or isinstance(e.x, Apply1) and e.x.fn == "-x"):
            inner = rf"\left({inner}\right)"
        elif e.fn == "exp" and not isinstance(e.x, Leaf):
            return rf"\exp\left({inner}\right)"
        return vocab.UNARY[e.fn].latex.format(inner)
    left, right = to_latex(e.x), to_latex(e.y)
    p = _PREC[e.fn]
    if e.fn == "pow":
        left = rf"\left({left}\right)" if _prec(e.x) <= p or isinstance(e.x, Leaf) and "^" in e.x.token else left
    elif e.fn in ("add", "sub", "mul"):
        left = rf"\left({left}\right)" if _prec(e.x) < p else left
        negated = isinstance(e.y, Apply1) and e.y.fn == "-x"
        right = rf"\left({right}\right)" if _prec(e.y) <= p or negated else right
    # div's \frac groups both sides itself
    return vocab.BINARY[e.fn].latex.format(left, right)
