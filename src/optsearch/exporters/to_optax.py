"""A rule as an optax module: `name(learning_rate, ...) -> optax.GradientTransformation` with pure init/update.

Written from the same templates as the torch export (code.py), with jax.numpy for torch. Noise and dropout
come from jax.random, so stochastic rules have RuleOptimizer's distributions but not its draws.
"""

from __future__ import annotations

from string import Template
from textwrap import wrap

from optsearch.dsl import vocab
from optsearch.dsl.rule import Rule
from optsearch.exporters.code import DECAY_HELPERS, HELPER_ORDER, constants, program, py_str, wrap_words

_HELPERS: dict[str, str] = {
    "bias_correction": '''
def bias_correction(beta: float, step: jax.Array) -> jax.Array:
    """1 - beta^t (dividing a running average started at zero by it removes the start's bias), as -expm1(t ln beta):
    1 - 0.999^t in float32 loses five digits at small t."""
    return -jnp.expm1(step * math.log(beta))
''',
    "adam": '''
def adam_update(m: jax.Array, v: jax.Array, step: jax.Array) -> jax.Array:
    """adam = m_hat / (sqrt(v_hat) + eps), computed as m / (sqrt(v) c1 / sqrt(c2) + c1 eps) with c = 1 - beta^t."""
    c1 = bias_correction(BETA_M, step)
    return m / (jnp.sqrt(v) * (c1 / jnp.sqrt(bias_correction(BETA_V, step))) + c1 * ADAM_EPS)
''',
    "rmsprop": '''
def rmsprop_update(grad: jax.Array, v: jax.Array, step: jax.Array) -> jax.Array:
    """rmsprop = g / (sqrt(v_hat) + eps)."""
    return grad / (jnp.sqrt(v) / jnp.sqrt(bias_correction(BETA_V, step)) + ADAM_EPS)
''',
    **{name: Template(text).substitute(step_t="jax.Array", value_t="jax.Array", min="jnp.minimum",
                                       cos="jnp.cos") for name, text in DECAY_HELPERS.items()},
}

_MODULE = Template('''"""$name: an optax transformation exported by optsearch (Neural Optimizer Search) from the rule

    $doc_infix

Standalone: it needs only jax and optax.
$module_note
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

RULE = $rule_str
$constants

class $state(NamedTuple):
    """The count of updates so far and the running averages the rule reads (pytrees like the params)$key_doc."""

    count: jax.Array$fields


def as_real(tree: optax.Params) -> optax.Params:
    """Complex leaves as their real view (real and imaginary parts on a last axis of 2), which is how torch's
    optimizers, and optsearch's, step a complex parameter."""
    return jax.tree.map(lambda x: jnp.stack([x.real, x.imag], -1) if jnp.iscomplexobj(x) else x, tree)


def like(real: optax.Updates, tree: optax.Params) -> optax.Updates:
    """`real` back in the leaf types of `tree`: a complex leaf from its real view."""
    return jax.tree.map(lambda r, x: jax.lax.complex(r[..., 0], r[..., 1]) if jnp.iscomplexobj(x) else r, real, tree)


def update_moment(updates: optax.Updates, moments: optax.Updates, decay: float, order: int) -> optax.Updates:
    """decay * moment + (1 - decay) * g^order, leaf by leaf (optax's update_moment)."""
    return jax.tree.map(lambda g, t: (1 - decay) * (g**order) + decay * t, updates, moments)
$helpers

def rule_delta(
$delta_params
) -> jax.Array:
    """The rule's update for one leaf, one line per node."""
$body
    return $delta


def $name(
    learning_rate: float, *, weight_decay: float = 0.0$signature,
) -> optax.GradientTransformation:
    r"""The update rule

        $doc_infix

    .. math::
        \\theta_t = \\theta_{t-1} - \\gamma \\lambda \\theta_{t-1} - \\gamma\\, \\Delta_t, \\qquad
        \\Delta_t = $latex

    with learning rate :math:`\\gamma` and decoupled weight decay :math:`\\lambda` (as AdamW: the rule sees the decayed
    weights).
$function_note
    """
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not (
            math.isfinite(learning_rate) and learning_rate >= 0.0):
        raise ValueError(f"Invalid learning_rate={learning_rate!r}: must be a finite number >= 0")
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float)
            or not (math.isfinite(weight_decay) and weight_decay >= 0.0)):
        raise ValueError(f"Invalid weight_decay={weight_decay!r}: must be a finite number >= 0")$checks

    def init_fn(params: optax.Params) -> $state:
        params = as_real(params)
        return $state(
            count=jnp.zeros([], jnp.int32),$init_fields
        )

    def update_fn(updates: optax.Updates, state: $state, params: optax.Params | None = None,
                  ) -> tuple[optax.Updates, $state]:
        if $needs_params:
            raise ValueError("$name needs the params (it reads the weights or decays them): call "
                             "update(updates, state, params)")
        given, updates = updates, as_real(updates)
        params = None if params is None else as_real(params)
        step = optax.safe_increment(state.count)
$update_body
        deltas = jax.tree.map(
            lambda $lambda_args: rule_delta($call_args),
            $trees,
        )
        new_updates = jax.tree.map(lambda d: -learning_rate * d, deltas)
        if weight_decay != 0.0:
            new_updates = jax.tree.map(lambda u, p: u - learning_rate * weight_decay * p, new_updates, params)
        return like(new_updates, given), $state(count=step$new_fields)

    return optax.GradientTransformation(init_fn, update_fn)
''')

_DETERMINISTIC = "Its updates match optsearch's RuleOptimizer running this rule to float32 rounding."
_STOCHASTIC = ("Its noise and dropout come from jax.random (a key in the state, seeded by `seed`), so they have "
               "the distributions of optsearch's RuleOptimizer but not its draws: updates match it in law, not "
               "bit for bit.")


def optax_module(rule: Rule, name: str) -> str:
    """The source of a module defining `name(learning_rate, ...)`, an optax transformation running `rule`."""
    prog = program(rule.expr)
    decays = sorted(t for t in rule.operands if vocab.OPERANDS[t].needs_total_steps)
    stochastic = bool(prog.draws)
    reads_w = bool(rule.operands & vocab.WEIGHT_SCALES.keys())
    body = [line.code("jax") for line in prog.operands + prog.nodes]
    if stochastic:
        body.insert(0, ", ".join(d.name for d in prog.draws) + ("," if len(prog.draws) == 1 else "")
                    + " = draw_noise(key, grad, step)")
    text = "\n".join(body)
    # rule_delta's parameters: (name, the pytree it comes from or None for a closed-over scalar)
    params = [("grad", "updates")]
    if reads_w:
        params.append(("param", "decayed"))
    params += [(s, s) for s in rule.state]
    if stochastic:
        params.append(("key", "keys"))
    trees = [p for p in params]
    scalars = [s for s in ("step", "total_steps") if s in text or (s == "step" and stochastic)]
    delta_params = ",\n".join("    " + p for p in [f"{p}: jax.Array" for p, _ in params] + [
        "step: jax.Array" if s == "step" else "total_steps: int" for s in scalars])
    update_body = [f"{s} = update_moment(updates, state.{s}, BETA_{s.upper()}, {'mvy'.index(s) + 1})"
                   for s in rule.state]
    if reads_w:
        update_body.append("decayed = jax.tree.map(lambda p: p * (1 - learning_rate * weight_decay), params)")
    if stochastic:
        update_body += ["key, subkey = jax.random.split(state.key)",
                        "leaves, treedef = jax.tree.flatten(updates)",
                        "keys = jax.tree.unflatten(treedef, list(jax.random.split(subkey, len(leaves))))"]
    signature, checks = "", ""
    if decays:
        signature += ", total_steps: int | None = None"
        checks += ("\n    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:"
                   '\n        raise ValueError(f"Invalid total_steps={total_steps!r}: the decay operand(s) "'
                   f'\n                         "{", ".join(decays)} of this rule run over T steps: pass '
                   'total_steps=T, a positive int")')
    if stochastic:
        signature += ", seed: int = 0"
        checks += ("\n    if isinstance(seed, bool) or not isinstance(seed, int):"
                   '\n        raise ValueError(f"Invalid seed={seed!r}: must be an int")')
    helpers = "".join("\n\n" + _HELPERS[h] for h in HELPER_ORDER if h in prog.helpers and h in _HELPERS)
    if stochastic:
        helpers += _draw_noise(prog)
    fields = "".join(f"\n    {s}: optax.Updates" for s in rule.state) + ("\n    key: jax.Array" if stochastic else "")
    init_fields = "".join(f"\n            {s}=jax.tree.map(jnp.zeros_like, params)," for s in rule.state)
    init_fields += "\n            key=jax.random.key(seed)," if stochastic else ""
    new_fields = "".join(f", {s}={s}" for s in rule.state) + (", key=key" if stochastic else "")
    delta = prog.delta if not prog.scalar else f"jnp.broadcast_to({prog.delta}, grad.shape)"
    module = _MODULE.safe_substitute(
        name=name, state=state_name(name), doc_infix=wrap_words(str(rule), 8), rule_str=py_str(str(rule)),
        latex=wrap_words(rule.latex(), 8, width=100), module_note=_note(stochastic, 0),
        function_note=_note(stochastic, 4),
        key_doc=";\n    key: the PRNG key of the noise" if stochastic else "", fields=fields, helpers=helpers,
        delta_params=delta_params, body="\n".join("    " + line for line in body), delta=delta,
        signature=signature, checks=checks, init_fields=init_fields,
        needs_params="params is None" if reads_w else "params is None and weight_decay != 0.0",
        update_body="\n".join(" " * 8 + line for line in update_body), new_fields=new_fields,
        lambda_args=", ".join(p for p, _ in trees),
        call_args=", ".join([p for p, _ in params] + scalars), trees=", ".join(t for _, t in trees))
    return Template(module).substitute(constants=constants(rule.state, module))


def _note(stochastic: bool, indent: int) -> str:
    return "\n".join(wrap(_STOCHASTIC if stochastic else _DETERMINISTIC, 110 - indent, initial_indent=" " * indent,
                          subsequent_indent=" " * indent))


def state_name(name: str) -> str:
    """The state class of the transformation `name`: `found_rule` -> `FoundRuleState`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_")) + "State"


def _draw_noise(prog) -> str:
    draws = prog.draws
    names = ", ".join(d.name for d in draws) + ("," if len(draws) == 1 else "")
    lines = [f"keys = jax.random.split(key, {len(draws)})"]
    lines += [d.code("jax", key=f"keys[{i}]") for i, d in enumerate(draws)]
    return ('\n\ndef draw_noise(key: jax.Array, grad: jax.Array, step: jax.Array) -> tuple[jax.Array, ...]:\n'
            '    """This step\'s random arrays for one leaf: eps, eps_t, then each dropout\'s keep mask."""\n'
            + "\n".join("    " + line for line in lines) + f"\n    return {names}\n")
