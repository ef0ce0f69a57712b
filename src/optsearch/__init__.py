"""optsearch: discover optimizer update rules (Neural Optimizer Search) and ship them as PyTorch optimizers.

    rule = optsearch.parse("g * exp(sign(g) * sign(m))")
    opt = optsearch.RuleOptimizer(model.parameters(), rule, lr=0.01)
    ev = optsearch.evaluate(rule, task="mnist1d")
    run = optsearch.search(task="mnist1d_large", strategy="ppo", budget=300, db="runs/demo.sqlite")
    result = optsearch.funnel("runs/demo.sqlite")   # re-score the best rules over seeds and held-out tasks
"""

from optsearch.dsl import Rule, RuleError, parse
from optsearch.engine import funnel, search
from optsearch.export import export
from optsearch.optim import (
    AddSign,
    LinearCosineDecay,
    PowerSign,
    RuleOptimizer,
    cosine_decay,
    linear_decay,
    make_optimizer,
    restart_decay,
    zoo,
)
from optsearch.strategies import make_strategy
from optsearch.tasks import Evaluation, Task, evaluate

__all__ = [
    "AddSign", "Evaluation", "LinearCosineDecay", "PowerSign", "Rule", "RuleError", "RuleOptimizer",
    "cosine_decay", "evaluate", "export", "funnel", "linear_decay", "make_optimizer", "make_strategy", "parse",
    "restart_decay", "search", "Task", "zoo",
]
