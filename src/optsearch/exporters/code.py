"""The one table of code templates both exports are written from, and the walk that lays a rule's tree out as
one named line per node.

A template is Python text with placeholders: `{x}`, `{y}` (arguments), `{xp}` (the array module: `torch` or
`jnp`), `{keep}` (a dropout mask). `one` computes a value for one tensor (torch) or one array leaf (jax): the
names in scope are `grad`, `param`, the raw buffers `m`, `v`, `y` and the 1-based `step`. `many` is the
torch `foreach` form over lists (`grads`, `params`, `ms`, `vs`, `ys`, `steps`). `jax` is given only where it
differs from `one`. Every torch template is the exact operation sequence of `optsearch.optim.functional`, so
the exported optimizer repeats RuleOptimizer's bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from textwrap import wrap

from optsearch.dsl import vocab
from optsearch.dsl.expr import Apply1, Expr, Leaf
from optsearch.dsl.vocab import ADAM_EPS, BETAS, EPS_STD, EPS_T_VARIANCE_DECAY


@dataclass(frozen=True)
class Template:
    one: str
    many: str
    jax: str | None = None
    helpers: tuple[str, ...] = ()  # names of HELPERS the code calls

    def for_target(self, target: str) -> str:
        """`target` is "torch", "foreach" or "jax"."""
        if target == "foreach":
            return self.many
        text = self.jax if target == "jax" and self.jax is not None else self.one
        return text.replace("{xp}", "jnp" if target == "jax" else "torch")


def _scalar(value: str, helper: str = "") -> Template:
    """A 0-dim value per tensor (as RuleOptimizer builds constants and decays), in the gradient's dtype;
    `value` may read `{step}`."""
    if not helper:
        return Template(f"scalar({value}, grad)", f"[scalar({value}, g) for g in grads]", jax=value,
                        helpers=("scalar",))
    return Template(f"scalar({value.format(step='step')}, grad)",
                    f"[scalar({value.format(step='s')}, g) for g, s in zip(grads, steps, strict=True)]",
                    jax=value.format(step="step"), helpers=("scalar", helper))


def _moment(name: str) -> Template:
    beta = f"BETA_{name.upper()}"
    return Template(f"{name} / bias_correction({beta}, step)",
                    f"torch._foreach_div({name}s, [bias_correction({beta}, s) for s in steps])",
                    helpers=("bias_correction",))


def _decay(token: str) -> tuple[str, Template]:
    if token == "ld":
        return "ld", _scalar("linear_decay({step} - 1, total_steps)", "linear_decay")
    kind = token[:2]
    n = vocab.CD_DEFAULT if token == "cd" else vocab.RD_DEFAULT if token == "rd" else float(token[3:-1])
    helper = {"cd": "cosine_decay", "rd": "restart_decay"}[kind]
    name = kind if token == kind else f"{kind}_{vocab._num(n).replace('.', '_')}"
    return name, _scalar(f"{helper}({{step}} - 1, total_steps, {n!r})", helper)


OPERANDS: dict[str, tuple[str, Template | None]] = {
    "g": ("grad", None),
    "g^2": ("grad_sq", Template("grad * grad", "torch._foreach_mul(grads, grads)")),
    "g^3": ("grad_cube", Template("grad ** 3", "torch._foreach_pow(grads, 3)")),
    **{name: (f"{name}_hat", _moment(name)) for name in ("m", "v", "y")},
    "sign(g)": ("sign_grad", Template("{xp}.sign(grad)", "torch._foreach_sign(grads)")),
    "sign(m)": ("sign_m", Template("{xp}.sign(m)", "torch._foreach_sign(ms)")),  # of the raw buffer
    "1": ("one", _scalar("1.0")),
    "2": ("two", _scalar("2.0")),
    "eps": ("eps", None),  # drawn by draw_noise
    **{token: (f"w_{token[:4].replace('-', '_')}",
               Template(f"param * {scale!r}", f"torch._foreach_mul(params, {scale!r})"))
       for token, scale in vocab.WEIGHT_SCALES.items()},
    "adam": ("adam", Template("adam_update(m, v, step)", "adam_updates(ms, vs, steps)",
                              helpers=("bias_correction", "adam"))),
    "rmsprop": ("rmsprop", Template("rmsprop_update(grad, v, step)", "rmsprop_updates(grads, vs, steps)",
                                    helpers=("bias_correction", "rmsprop"))),
    **{token: _decay(token) for token in vocab.OPERANDS if vocab.OPERANDS[token].needs_total_steps},
    "eps_t": ("eps_t", None),  # drawn by draw_noise
}
"""Operand token -> (variable name, template computing it; None where the value is already in scope)."""


def _drop(p: str) -> Template:
    q = repr(1.0 - float(p))
    return Template(f"{{x}} * {{keep}} / {q}", f"torch._foreach_div(torch._foreach_mul({{x}}, {{keep}}), {q})")


def _clip(c: str) -> Template:
    c = repr(float(c))
    return Template(f"{{xp}}.clip({{x}}, -{c}, {c})",
                    f"torch._foreach_clamp_max(torch._foreach_clamp_min({{x}}, -{c}), {c})")


UNARY: dict[str, tuple[str, Template]] = {
    "-x": ("neg", Template("-{x}", "torch._foreach_neg({x})")),
    "exp": ("exp", Template("{xp}.exp({x})", "torch._foreach_exp({x})")),
    "log": ("log", Template("{xp}.log({xp}.abs({x}))", "torch._foreach_log(torch._foreach_abs({x}))")),
    "sqrt": ("sqrt", Template("{xp}.sqrt({xp}.abs({x}))", "torch._foreach_sqrt(torch._foreach_abs({x}))")),
    **{f"clip{c}": ("clip", _clip(c)) for c in vocab.CLIP_THRESHOLDS},
    **{f"drop{p}": ("drop", _drop(p)) for p in vocab.DROP_PROBS},
    "sign": ("sign", Template("{xp}.sign({x})", "torch._foreach_sign({x})")),
}
"""Unary token -> (temporary's name, template)."""

BINARY: dict[str, tuple[str, Template]] = {
    "add": ("add", Template("{x} + {y}", "torch._foreach_add({x}, {y})")),
    "sub": ("sub", Template("{x} - {y}", "torch._foreach_sub({x}, {y})")),
    "mul": ("mul", Template("{x} * {y}", "torch._foreach_mul({x}, {y})")),
    "div": ("div", Template("{x} / ({y} + DIV_DELTA)",
                            "torch._foreach_div({x}, torch._foreach_add({y}, DIV_DELTA))")),
    "pow": ("pow", Template("{x} ** {y}", "torch._foreach_pow({x}, {y})")),
}
"""Binary token -> (temporary's name, template); `keep` never reaches a tree."""

NOISE: dict[str, Template] = {
    "eps": Template("normal(grad, EPS_STD, generator)", "",
                    jax="EPS_STD * jax.random.normal({key}, grad.shape, grad.dtype)", helpers=("normal",)),
    "eps_t": Template("normal(grad, step ** (-EPS_T_VARIANCE_DECAY / 2), generator)", "",
                      jax="step ** (-EPS_T_VARIANCE_DECAY / 2) * jax.random.normal({key}, grad.shape, grad.dtype)",
                      helpers=("normal",)),
    "keep": Template("torch.rand({shape}, generator=generator, dtype=grad.dtype, device=grad.device) >= {p}", "",
                     jax="jax.random.bernoulli({key}, {q}, {shape})"),
}
"""What draw_noise draws: noise operands and dropout keep-masks (`{shape}` is `grad.shape` or `()`)."""

_SCALAR_LEAVES = frozenset({"1", "2"} | {t for t, o in vocab.OPERANDS.items() if o.needs_total_steps})


@dataclass(frozen=True)
class Line:
    """`name = template(args)`: one operand or one node of the tree."""

    name: str
    template: Template
    args: tuple[str, ...] = ()
    keep: str = ""  # the dropout mask this node reads

    def code(self, target: str) -> str:
        text = self.template.for_target(target)
        args = [in_scope(a, target) for a in self.args]
        return f"{self.name} = " + text.format(**dict(zip("xy", args, strict=False)), keep=self.keep)


def in_scope(name: str, target: str) -> str:
    """The gradient is `grad` in per-tensor code and `grads` in foreach code; other names hold lists there."""
    return "grads" if name == "grad" and target == "foreach" else name


@dataclass(frozen=True)
class Draw:
    """One random tensor, in the order RuleOptimizer draws it: eps, eps_t, then each mask in evaluation order."""

    name: str
    kind: str  # "eps", "eps_t" or "keep"
    p: str = ""  # drop probability (keep masks)
    scalar: bool = False  # the mask of a 0-dim value (dropout of a constant)

    def code(self, target: str, key: str = "") -> str:
        template = NOISE[self.kind]
        text = template.jax if target == "jax" else template.one
        q = repr(1.0 - float(self.p)) if self.p else ""
        return f"{self.name} = " + text.format(key=key, shape="()" if self.scalar else "grad.shape", p=self.p, q=q)


@dataclass(frozen=True)
class Program:
    """A rule laid out for code: the draws, the operand lines, the node lines (the last one named `delta`)."""

    draws: tuple[Draw, ...]
    operands: tuple[Line, ...]
    nodes: tuple[Line, ...]
    delta: str  # the variable holding Δ
    scalar: bool  # Δ is 0-dim (a rule of constants): broadcast it to the gradient's shape
    helpers: frozenset[str]


def _is_scalar(e: Expr) -> bool:
    if isinstance(e, Leaf):
        return e.token in _SCALAR_LEAVES
    if isinstance(e, Apply1):
        return _is_scalar(e.x)
    return _is_scalar(e.x) and _is_scalar(e.y)


def program(tree: Expr) -> Program:
    """Lay `tree` out in RuleOptimizer's evaluation order (post-order, left before right)."""
    used: set[str] = set()
    nodes: list[Line] = []
    masks: list[Draw] = []

    def walk(e: Expr) -> str:
        if isinstance(e, Leaf):
            used.add(e.token)
            return OPERANDS[e.token][0]
        if isinstance(e, Apply1):
            x = walk(e.x)
            short, template = UNARY[e.fn]
            keep = ""
            if e.fn.startswith("drop"):
                keep = f"keep_{len(masks) + 1}"
                masks.append(Draw(keep, "keep", e.fn[4:], _is_scalar(e.x)))
            nodes.append(Line(f"{short}_{len(nodes) + 1}", template, (x,), keep))
            return nodes[-1].name
        x, y = walk(e.x), walk(e.y)
        short, template = BINARY[e.fn]
        nodes.append(Line(f"{short}_{len(nodes) + 1}", template, (x, y)))
        return nodes[-1].name

    delta = walk(tree)
    if nodes:
        nodes[-1] = Line("delta", nodes[-1].template, nodes[-1].args, nodes[-1].keep)
        delta = "delta"
    order = list(vocab.OPERANDS)
    operands = tuple(Line(OPERANDS[t][0], OPERANDS[t][1]) for t in sorted(used, key=order.index)
                     if OPERANDS[t][1] is not None)
    draws = tuple(Draw(t, t) for t in ("eps", "eps_t") if t in used) + tuple(masks)
    helpers = {h for line in operands + tuple(nodes) for h in line.template.helpers}
    helpers |= {h for d in draws for h in NOISE[d.kind].helpers}
    return Program(draws, operands, tuple(nodes), delta, _is_scalar(tree), frozenset(helpers))


DECAY_HELPERS: dict[str, str] = {
    "linear_decay": '''
def linear_decay(step: $step_t, total_steps: int) -> $value_t:
    """ld: (T - min(s, T)) / T, from 1 at the first update (s = 0) down to 0 at s = T."""
    return (total_steps - $min(step, total_steps)) / total_steps
''',
    "cosine_decay": '''
def cosine_decay(step: $step_t, total_steps: int, periods: float) -> $value_t:
    """cd(n): (1 + cos(2 pi n min(s, T) / T)) / 2, n cosine cycles over T steps."""
    fraction = 2.0 * periods * $min(step, total_steps) / total_steps
    return 0.5 * (1.0 + $cos(math.pi * fraction))
''',
    "restart_decay": '''
def restart_decay(step: $step_t, total_steps: int, periods: float) -> $value_t:
    """rd(n): (1 + cos(pi ((n min(s, T)) mod T) / T)) / 2, a half cosine from 1 to 0 restarted n times."""
    scaled = periods * $min(step, total_steps)
    return 0.5 * (1.0 + $cos(math.pi * (scaled % total_steps) / total_steps))
''',
}
"""The decay operands' schedules (optim/decay.py's formulas, operation for operation), for both targets:
`$min`, `$cos` and the types are filled in per target."""

HELPER_ORDER = ("scalar", "bias_correction", "adam", "rmsprop", *DECAY_HELPERS, "normal")
"""The order helpers appear in a generated module (fixed, so the same rule gives the same file)."""


def constants(state: tuple[str, ...], module: str) -> str:
    """Module-level definitions of the numbers `module`'s code reads (only those), betas first."""
    values = {**{f"BETA_{s.upper()}": BETAS[s] for s in "mvy"}, "ADAM_EPS": ADAM_EPS, "DIV_DELTA": vocab.DIV_DELTA,
              "EPS_STD": EPS_STD, "EPS_T_VARIANCE_DECAY": EPS_T_VARIANCE_DECAY}
    needed = [f"BETA_{s.upper()}" for s in state] + [k for k in values if k[:4] != "BETA" and k in module]
    return "".join(f"{k} = {values[k]!r}\n" for k in needed)


def wrap_words(text: str, indent: int, width: int = 110) -> str:
    """`text` broken at spaces onto lines indented by `indent` (first line not indented): infix and LaTeX
    mean the same across a line break, and generated files keep within ruff's line length."""
    return ("\n" + " " * indent).join(wrap(text, width - indent, break_long_words=False, break_on_hyphens=False))


def py_str(text: str) -> str:
    """A Python literal of `text` (infix: no quotes or backslashes), split over lines when long."""
    parts = wrap(text, 100, break_long_words=False, break_on_hyphens=False, drop_whitespace=False)
    if len(parts) == 1:
        return repr(text)
    return "(\n" + "".join(f"    {p!r}\n" for p in parts) + ")"
