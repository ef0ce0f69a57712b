"""`make_optimizer`: a zoo name or a rule as a ready optimizer, the fastest class that runs it step for step."""

from __future__ import annotations

import torch
from torch.optim.optimizer import Optimizer, ParamsT

from optsearch.dsl import Rule, vocab
from optsearch.optim.rule_optimizer import RuleOptimizer
from optsearch.optim.signs import AddSign, PowerSign
from optsearch.optim.zoo import SIGN_DECAYS, resolve, zoo


def make_optimizer(name_or_rule: str | Rule, params: ParamsT, lr: float, total_steps: int | None = None,
                   seed: int | None = None, weight_decay: float = 0.0) -> Optimizer:
    """An optimizer from a zoo name, a Rule or infix rule text.

    Names with a faster equivalent get it, step for step the same as the zoo rule: `sgd` and `adam` are
    torch's SGD and Adam(eps=1e-8), `powersign[-ld|-cd|-rd]` and `addsign[-…]` are PowerSign and AddSign
    (decays over `total_steps`). `momentum` is torch's SGD(momentum=0.9), as the transfer benchmark has always
    run it: not step for step its zoo rule `m` (an EMA, so lr·(1−β) per gradient, and bias-corrected), which is
    what a search or the funnel trains. Everything else runs as a RuleOptimizer.

    `weight_decay` is decoupled (AdamW's θ ← θ − lr·wd·θ before the step) for every zoo name and rule, so
    `adam` with weight decay is torch's AdamW, and `sgd` torch's SGD(weight_decay) (the same update for plain
    SGD). `momentum` gets torch SGD's own, L2 weight decay (added to the gradient).
    """
    if name_or_rule == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name_or_rule == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name_or_rule == "adam":
        if weight_decay:
            return torch.optim.AdamW(params, lr=lr, eps=vocab.ADAM_EPS, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, eps=vocab.ADAM_EPS)
    if isinstance(name_or_rule, str) and name_or_rule in zoo:
        family, _, decay = name_or_rule.partition("-")
        if family in ("powersign", "addsign"):
            if decay and total_steps is None:
                raise ValueError(f"{name_or_rule} decays its sign term over total_steps: pass total_steps=T")
            sign_decay = SIGN_DECAYS[decay][1](total_steps) if decay else None
            return (PowerSign if family == "powersign" else AddSign)(params, lr=lr, sign_decay=sign_decay,
                                                                     weight_decay=weight_decay)
    return RuleOptimizer(params, resolve(name_or_rule), lr=lr, total_steps=total_steps, seed=seed,
                         weight_decay=weight_decay)
