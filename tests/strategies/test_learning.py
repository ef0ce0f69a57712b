"""Evidence the strategies learn: on a synthetic objective (the fraction of a hidden rule's tokens matched
position by position) the learned strategies beat random search by a clear margin at the same budget."""

import statistics

import pytest

from optsearch.dsl import parse
from optsearch.strategies import make_strategy

TARGET = parse("g * exp(sign(g) * sign(m))").tokens  # PowerSign: two groups
BUDGET, BATCH = 400, 20


def search(name: str) -> tuple[float, float]:
    """Best reward and mean reward of the last 100 rules."""
    strategy = make_strategy(name, groups=2, seed=0)
    rewards: list[float] = []
    while len(rewards) < BUDGET:
        rules = strategy.ask(BATCH)
        batch = [sum(a == b for a, b in zip(r.tokens, TARGET, strict=True)) / len(TARGET) for r in rules]
        strategy.tell(rules, batch)
        rewards += batch
    return max(rewards), statistics.mean(rewards[-100:])


@pytest.fixture(scope="module")
def random_result() -> tuple[float, float]:
    return search("random")


@pytest.mark.parametrize(("name", "best_margin", "mean_margin"),
                         [("ppo", 0.3, 0.4), ("reinforce", 0.1, 0.15), ("evolution", 0.3, 0.3)])
def test_learned_strategies_beat_random_search(name, best_margin, mean_margin, random_result):
    best, late_mean = search(name)
    random_best, random_late_mean = random_result
    print(f"{name}: best {best:.2f} last-100 mean {late_mean:.2f}; "
          f"random: best {random_best:.2f} last-100 mean {random_late_mean:.2f}")
    assert best >= random_best + best_margin
    assert late_mean >= random_late_mean + mean_margin
