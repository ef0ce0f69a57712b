"""Rules as PyTorch optimizers: RuleOptimizer, PowerSign/AddSign, decays, the paper's LR schedule, the zoo."""

from optsearch.optim.decay import CosineDecay, LinearDecay, RestartDecay, cosine_decay, linear_decay, restart_decay
from optsearch.optim.functional import (
    addsign_update,
    bias_correction,
    compute_update,
    compute_updates,
    decay_weights,
    init_state,
    powersign_update,
    rule_update,
    update_moment,
)
from optsearch.optim.make import make_optimizer
from optsearch.optim.rule_optimizer import RuleOptimizer
from optsearch.optim.schedule import LinearCosineDecay
from optsearch.optim.signs import AddSign, PowerSign
from optsearch.optim.zoo import PAPER_RULES, ZooEntry, resolve, zoo

__all__ = [
    "AddSign",
    "CosineDecay",
    "LinearCosineDecay",
    "LinearDecay",
    "PAPER_RULES",
    "PowerSign",
    "RestartDecay",
    "RuleOptimizer",
    "ZooEntry",
    "addsign_update",
    "bias_correction",
    "compute_update",
    "compute_updates",
    "cosine_decay",
    "decay_weights",
    "init_state",
    "linear_decay",
    "make_optimizer",
    "powersign_update",
    "resolve",
    "restart_decay",
    "rule_update",
    "update_moment",
    "zoo",
]
