"""How big a rule may be: one set of limits for every way a rule is built, chosen so that whatever one
way accepts the others accept too (`parse(str(r))` and `Rule.from_tokens(r.tokens)` work for every rule r).

The limits are on the expression tree, the rule's meaning, because that is what every form shares. Token
groups can share a result many times (`o1 = o0 + o0`, `o2 = o1 + o1`, ...), so a few groups can mean a
tree, and a text, exponentially larger: such rules are refused by naming the limit, never truncated.
The parser's own guards (text length, bracket nesting) are derived from the tree limits, so the printed
text of any rule within them parses back.
"""

from __future__ import annotations

from optsearch.dsl.errors import RuleError
from optsearch.dsl.expr import Apply1, Apply2, Expr, Leaf

MAX_FUNCTIONS = 256
"""Functions and operators in a rule's tree (a shared group result counts each time it is used)."""
MAX_DEPTH = 64
"""Functions nested in one another, from the update down to an operand; keeps every tree walk shallow."""
MAX_GROUPS = MAX_FUNCTIONS
"""Token groups in a rule. A tree lays out in at most one group per function (at least one group), so
every rule within MAX_FUNCTIONS has token groups `from_tokens` accepts."""

MAX_TEXT_LENGTH = 16 * (2 * MAX_FUNCTIONS + 1)
"""Characters of rule text: a tree within MAX_FUNCTIONS has at most 2·MAX_FUNCTIONS + 1 nodes, and every
node prints in fewer than 16 characters with its brackets and spaces (the longest is `clip(…, 1e-5)`)."""
MAX_NESTING = 3 * MAX_DEPTH + 3
"""Parser recursion guard: each level of a printed tree opens at most 3 levels of the grammar (`-(`, a
bracket, a function call)."""


def check(tree: Expr) -> None:
    """Raise RuleError if the tree is bigger than the limits allow."""
    functions, depth = _measure(tree)
    if functions > MAX_FUNCTIONS:
        raise RuleError(f"the rule has more than {MAX_FUNCTIONS} functions and operators ({functions})",
                        allowed=f"at most {MAX_FUNCTIONS}")
    if depth > MAX_DEPTH:
        raise RuleError(f"the rule nests functions {depth} deep", allowed=f"at most {MAX_DEPTH} levels")


def _measure(tree: Expr) -> tuple[int, int]:
    """(functions, depth) of a tree, counting a shared subtree once per use as the printed text does, in time
    linear in the distinct nodes and without recursion (a tree from tokens can be a deep, shared DAG)."""
    seen: dict[int, tuple[int, int]] = {}
    stack = [tree]
    while stack:
        node = stack[-1]
        if isinstance(node, Leaf):
            seen[id(node)] = (0, 0)
            stack.pop()
            continue
        if isinstance(node, Apply1):
            kids = (node.x,)
        elif isinstance(node, Apply2):
            kids = (node.x, node.y)
        else:
            raise RuleError(f"{type(node).__name__} is not a node of a rule's tree", allowed="Leaf, Apply1, Apply2")
        todo = [k for k in kids if id(k) not in seen]
        if todo:
            stack.extend(todo)
            continue
        stack.pop()
        seen[id(node)] = (1 + sum(seen[id(k)][0] for k in kids), 1 + max(seen[id(k)][1] for k in kids))
    return seen[id(tree)]
