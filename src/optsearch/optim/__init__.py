"""Rules as PyTorch optimizers: RuleOptimizer, PowerSign/AddSign, decays, the paper's LR schedule, the zoo."""

from optsearch.optim.decay import CosineDecay, LinearDecay, RestartDecay, cosine_decay, linear_decay, restart_decay
from optsearch.optim.functional import compute_update, compute_updates, init_state
from optsearch.optim.rule_optimizer import RuleOptimizer
from optsearch.optim.schedule import LinearCosineDecay
from optsearch.optim.signs import AddSign, PowerSign
from optsearch.optim.zoo import PAPER_RULES, ZooEntry, make_optimizer, zoo

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
    "compute_update",
    "compute_updates",
    "cosine_decay",
    "init_state",
    "linear_decay",
    "make_optimizer",
    "restart_decay",
    "zoo",
]
