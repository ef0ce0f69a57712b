"""Functional fingerprints and cheap validity checks, computed on fixed random probe values.

Two rules that compute the same function (`g*m` and `m*g`, `g` and `-(-g)`) get the same fingerprint,
so the search trains each function once. Probes mimic real optimizer statistics: per element a gradient
scale s spread over 10^-6..10^-1, with m ~ s, v ~ s², y ~ s³, so `adam` and `rmsprop` are O(1) as in
training. Decay operands are opaque values in [0, 1], one per distinct schedule: tokens whose schedules
agree on every step of a run share one (plain `rd`, rd(1), is plain `cd`, cd(0.5)). Dropout draws from a
generator reset per rule, so commuted forms with one dropout agree; rules with several dropouts may get
distinct fingerprints for equivalent forms (a missed dedup, never a wrong merge of different functions).
"""

from __future__ import annotations

import hashlib
from functools import cache

import torch
from torch import Tensor

from optsearch.dsl import vocab
from optsearch.dsl.expr import Expr, evaluate

VERSION = 2
"""Raised whenever some rule's fingerprint changes; stores record the version of their keys (`engine.store`).
1 → 2: plain `rd` shares plain `cd`'s probe (every other fingerprint is unchanged)."""
PROBE_SIZE = 256
_SEED = 20170901


@cache
def _probes(variant: int) -> dict[str, Tensor]:
    """Operand values; variants differ only in the gradient-derived operands."""
    fixed = torch.Generator().manual_seed(_SEED)
    gen = torch.Generator().manual_seed(_SEED + 1 + variant)
    f64 = dict(dtype=torch.float64)
    n = PROBE_SIZE
    scale = 10.0 ** (-6 + 5 * torch.rand(n, generator=gen, **f64))
    g = scale * torch.randn(n, generator=gen, **f64)
    m = scale * torch.randn(n, generator=gen, **f64)
    v = (m.square() + g.square()) * (1 + 3 * torch.rand(n, generator=gen, **f64))
    y = scale**3 * torch.randn(n, generator=gen, **f64)
    w = 0.1 * torch.randn(n, generator=fixed, **f64)
    values = {
        "g": g, "g^2": g.square(), "g^3": g**3, "m": m, "v": v, "y": y,
        "sign(g)": torch.sign(g), "sign(m)": torch.sign(m),
        "1": torch.tensor(1.0, **f64), "2": torch.tensor(2.0, **f64),
        "eps": vocab.EPS_STD * torch.randn(n, generator=fixed, **f64),
        "adam": m / (v.sqrt() + vocab.ADAM_EPS), "rmsprop": g / (v.sqrt() + vocab.ADAM_EPS),
        "eps_t": torch.randn(n, generator=fixed, **f64)
        / (1 + 1000 * torch.rand(n, generator=fixed, **f64)) ** (vocab.EPS_T_VARIANCE_DECAY / 2),
    }
    values.update({tok: scale_w * w for tok, scale_w in vocab.WEIGHT_SCALES.items()})
    seen: list[tuple[Tensor, Tensor]] = []  # (a schedule's values on the probe runs, its probe)
    for o in vocab.DECAY_OPERANDS:
        if o.needs_total_steps:
            drawn = torch.rand(n, generator=fixed, **f64)  # drawn for every token: the others keep their probes
            schedule = _schedule_values(o.token)
            same = [probe for other, probe in seen if torch.allclose(other, schedule, rtol=0, atol=1e-12)]
            seen.append((schedule, drawn))
            values[o.token] = same[0] if same else drawn
    return values


SCHEDULE_PROBE_STEPS = (97, 1000)
"""Run lengths on which two decay operands must agree at every step to share a probe."""


@cache
def _schedule_values(token: str) -> Tensor:
    """The schedule's values at every step of runs of SCHEDULE_PROBE_STEPS steps (a run reads steps 0 … T − 1).
    Equal schedules agree to rounding (rd(1) and cd(0.5) round π·s/T apart, by one ulp at some steps)."""
    from optsearch.optim.decay import SCHEDULES  # optim builds on dsl, so it is imported only when needed

    values = [SCHEDULES[token](total)(step) for total in SCHEDULE_PROBE_STEPS for step in range(total)]
    return torch.tensor(values, dtype=torch.float64)


def _outputs(tree: Expr) -> tuple[Tensor, Tensor]:
    outs = []
    for variant in (0, 1):
        gen = torch.Generator().manual_seed(_SEED + 7)
        with torch.no_grad():
            out = evaluate(tree, _probes(variant), gen)
        outs.append(out.expand(PROBE_SIZE).to(torch.float64))
    return outs[0], outs[1]


def fingerprint(tree: Expr) -> str:
    """A 16-hex-digit hash of the tree's values on the probes, rounded to ~5 significant digits."""
    a, b = _outputs(tree)
    x = torch.cat([a, b])
    finite = torch.isfinite(x)
    mant, expo = torch.frexp(torch.where(finite, x, torch.zeros_like(x)))
    mant = torch.round(mant * 2**16)
    code = torch.where(finite, mant, torch.where(torch.isnan(x), 3.0, 2.0 * torch.sign(x)) * 2**20)
    data = torch.stack([code, expo.to(torch.float64)]).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def rejection(tree: Expr) -> str | None:
    """Why a rule with this tree is not worth training (None if it is): non-finite, zero, or blind to the
    gradient."""
    a, b = _outputs(tree)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return "update is not finite on the probe values"
    if bool((a == 0).all()) and bool((b == 0).all()):
        return "update is identically zero"
    if torch.equal(a, b):
        return "update does not depend on the gradient"
    return None
