import math

import pytest
import torch

from optsearch.optim import LinearCosineDecay


def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs(scheduler: LinearCosineDecay, steps: int) -> list[float]:
    out = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr()[0])
    return out


def formula(t, T=10, n=0.5, alpha=0.0, beta=0.001):
    t = min(t, T)
    return ((alpha + (T - t) / T) * 0.5 * (1 + math.cos(2 * math.pi * n * t / T)) + beta)


@pytest.mark.parametrize("kwargs", [dict(), dict(n=2, alpha=0.3, beta=0.01)])
def test_linear_cosine_decay_follows_the_papers_formula(kwargs):
    ours = dict(kwargs, periods=kwargs.pop("n", 0.5))
    got = lrs(LinearCosineDecay(optimizer(0.1), total_steps=10, **ours), 14)
    expected = [0.1 * formula(t, n=ours["periods"], **kwargs) for t in range(15)]
    assert got == pytest.approx(expected, rel=1e-12)


def test_it_ends_at_beta_times_the_initial_lr():
    assert lrs(LinearCosineDecay(optimizer(0.1), total_steps=10), 12)[-1] == pytest.approx(0.1 * 0.001)


def test_noisy_variant_is_seeded_and_resumable():
    a = lrs(LinearCosineDecay(optimizer(), total_steps=50, noisy=True, seed=1), 20)
    assert a == lrs(LinearCosineDecay(optimizer(), total_steps=50, noisy=True, seed=1), 20)
    assert a != lrs(LinearCosineDecay(optimizer(), total_steps=50, noisy=True, seed=2), 20)
    assert a != lrs(LinearCosineDecay(optimizer(), total_steps=50), 20)

    first = LinearCosineDecay(optimizer(), total_steps=50, noisy=True, seed=1)
    lrs(first, 10)
    resumed = LinearCosineDecay(optimizer(), total_steps=50, noisy=True, seed=99)
    resumed.load_state_dict(first.state_dict())
    assert lrs(resumed, 10) == a[10:]


def test_noise_shrinks_as_training_goes_on():
    scheduler = LinearCosineDecay(optimizer(1.0), total_steps=10_000, noisy=True, seed=0)
    quiet = LinearCosineDecay(optimizer(1.0), total_steps=10_000)
    early = [scheduler.factor(t) - quiet.factor(t) for t in range(0, 200)]
    late = [scheduler.factor(t) - quiet.factor(t) for t in range(5000, 5200)]
    assert torch.tensor(late).std() < torch.tensor(early).std() / 3


@pytest.mark.parametrize("kwargs, word", [
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=10, periods=-1), "periods"),
    (dict(total_steps=10, beta=float("inf")), "beta"),
])
def test_invalid_arguments_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LinearCosineDecay(optimizer(), **kwargs)
