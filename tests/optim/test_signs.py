"""PowerSign and AddSign against a NumPy transcription of paper.md's formulas."""

import copy
import io
import math

import numpy as np
import pytest
import torch

from optsearch.optim import AddSign, LinearCosineDecay, PowerSign, cosine_decay, linear_decay, restart_decay

T = 12


def np_decay(kind: str, n: float = 0.0, zero_after: float | None = None):
    """paper.md's decays, written out again independently of optsearch.optim.decay."""
    def fn(s):
        s = min(s, T)
        if kind == "linear":
            return (T - s) / T
        if kind == "cosine":
            frac = 2 * n * s / T
            return 0.0 if zero_after is not None and frac >= 2 * zero_after else 0.5 * (1 + np.cos(np.pi * frac))
        if zero_after is not None and n * s / T >= zero_after:
            return 0.0
        return 0.5 * (1 + np.cos(np.pi * ((n * s) % T) / T))
    return fn


DECAYS = {  # name: (ours, reference)
    "none": (None, lambda s: 1.0),
    "linear": (linear_decay(T), np_decay("linear")),
    "cosine": (cosine_decay(T), np_decay("cosine", 0.5)),
    "cosine-2-zero_after": (cosine_decay(T, 2, zero_after=1.5), np_decay("cosine", 2, 1.5)),
    "restart": (restart_decay(T), np_decay("restart", 1)),
    "restart-3-zero_after": (restart_decay(T, 3, zero_after=2.0), np_decay("restart", 3, 2.0)),
}


def gradients(steps: int = 15, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=size) * rng.choice([0.0, 1.0], size=size, p=[0.1, 0.9]) for _ in range(steps)]
    return grads  # about 10% exact zeros, so sign(g) = 0 occurs


def reference(kind: str, grads, w0, lr, beta, decay, base=math.e, alpha=1.0) -> np.ndarray:
    w, m = w0.copy(), np.zeros_like(w0)
    for t, g in enumerate(grads, 1):
        m = beta * m + (1 - beta) * g
        d = decay(t - 1)
        agree = np.sign(g) * np.sign(m)
        w = w - lr * (base ** (d * agree) * g if kind == "power" else (alpha + d * agree) * g)
    return w


def ours(make, grads, w0) -> np.ndarray:
    w = torch.nn.Parameter(torch.tensor(w0))
    opt = make([w])
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("decay", DECAYS)
def test_powersign_matches_the_papers_formula(decay):
    grads, w0 = gradients(), np.linspace(-1, 1, 40)
    mine, ref = DECAYS[decay]
    expected = reference("power", grads, w0, lr=0.05, beta=0.8, decay=ref, base=3.0)
    got = ours(lambda ps: PowerSign(ps, lr=0.05, base=3.0, beta=0.8, sign_decay=mine), grads, w0)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("decay", DECAYS)
def test_addsign_matches_the_papers_formula(decay):
    grads, w0 = gradients(), np.linspace(-1, 1, 40)
    mine, ref = DECAYS[decay]
    expected = reference("add", grads, w0, lr=0.05, beta=0.8, decay=ref, alpha=0.7)
    got = ours(lambda ps: AddSign(ps, lr=0.05, alpha=0.7, beta=0.8, sign_decay=mine), grads, w0)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


def test_defaults_are_the_papers():
    grads, w0 = gradients(), np.linspace(-1, 1, 40)
    np.testing.assert_allclose(ours(PowerSign, grads, w0),
                               reference("power", grads, w0, lr=0.1, beta=0.9, decay=lambda s: 1.0), rtol=1e-13)
    np.testing.assert_allclose(ours(AddSign, grads, w0),
                               reference("add", grads, w0, lr=0.1, beta=0.9, decay=lambda s: 1.0), rtol=1e-13)


def test_a_zero_running_average_leaves_the_gradient_unscaled():
    # m = 0.9·1 + 0.1·(−9) = 0 exactly on the second step, so sign(m) = 0 and the factor is base^0 = 1.
    for make in (PowerSign, AddSign):
        got = ours(lambda ps, make=make: make(ps, lr=1.0), [np.array([10.0]), np.array([-9.0])], np.array([0.0]))
        first = 10.0 * (math.e if make is PowerSign else 2.0)
        assert got[0] == pytest.approx(-first + 9.0, rel=1e-15)


def test_a_zero_sign_decay_is_sgd():
    grads, w0 = gradients(), np.linspace(-1, 1, 40)
    sgd = w0 - 0.1 * sum(grads)
    for make in (PowerSign, AddSign):
        got = ours(lambda ps, make=make: make(ps, sign_decay=lambda s: 0.0), grads, w0)
        np.testing.assert_allclose(got, sgd, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [PowerSign, AddSign])
def test_keeps_one_buffer_per_parameter(make):
    p = torch.nn.Parameter(torch.ones(5))
    opt = make([p])
    p.grad = torch.ones(5)
    opt.step()
    assert opt.state[p].keys() == {"step", "m"}


@pytest.mark.parametrize("make", [
    lambda ps: PowerSign(ps, lr=0.01, sign_decay=cosine_decay(20)),
    lambda ps: AddSign(ps, lr=0.01, sign_decay=restart_decay(20, 2)),
])
def test_resuming_from_a_state_dict_repeats_the_uninterrupted_run(problem, make):
    model = problem.model()
    problem.train(model, make(model.parameters()), 20)
    first = problem.model()
    opt = make(first.parameters())
    problem.train(first, opt, 10)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    resumed = problem.model()
    resumed.load_state_dict(saved["model"])
    opt = make(resumed.parameters())
    opt.load_state_dict(saved["opt"])
    problem.train(resumed, opt, 10)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_param_groups_and_schedulers_work(problem):
    model = problem.model()
    first, *rest = model.parameters()
    opt = PowerSign([{"params": [first], "lr": 0.0}, {"params": rest}], lr=0.05)
    start = first.detach().clone()
    scheduler = LinearCosineDecay(opt, total_steps=10)
    problem.train(model, opt, 10, scheduler)
    assert torch.equal(first, start)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.05 * 0.001)


@pytest.mark.parametrize("make, kwargs, word", [
    (PowerSign, dict(lr=-0.1), "lr"),
    (PowerSign, dict(base=0.0), "base"),
    (PowerSign, dict(beta=1.0), "beta"),
    (PowerSign, dict(sign_decay=3), "sign_decay"),
    (AddSign, dict(alpha=float("nan")), "alpha"),
    (AddSign, dict(beta=-0.1), "beta"),
])
def test_invalid_arguments_are_refused_by_name(make, kwargs, word):
    with pytest.raises(ValueError, match=word):
        make([torch.nn.Parameter(torch.ones(2))], **kwargs)


def test_a_deep_copy_keeps_the_sign_decay():
    opt = PowerSign([torch.nn.Parameter(torch.ones(2))], sign_decay=linear_decay(10))
    assert copy.deepcopy(opt).sign_decay == linear_decay(10)
