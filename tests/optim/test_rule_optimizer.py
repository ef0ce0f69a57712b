import copy
import io

import pytest
import torch

from optsearch.dsl import RuleError, parse
from optsearch.optim import PowerSign, RuleOptimizer, linear_decay

STOCHASTIC = "drop(g, 0.3) * exp(sign(g) * sign(m))"


def test_adam_rule_follows_torch_adam_step_for_step(problem, all_close):
    ours = problem.run(lambda ps: RuleOptimizer(ps, "adam", lr=1e-2))
    torch_adam = problem.run(lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-8))
    all_close(ours, torch_adam, rtol=1e-10, atol=1e-12)


def test_g_follows_torch_sgd_exactly(problem, all_close):
    all_close(problem.run(lambda ps: RuleOptimizer(ps, "g", lr=0.1)),
              problem.run(lambda ps: torch.optim.SGD(ps, lr=0.1)), rtol=0, atol=0)


def test_powersign_rule_follows_powersign(problem, all_close):
    all_close(problem.run(lambda ps: RuleOptimizer(ps, "g * exp(sign(g) * sign(m))", lr=0.01)),
              problem.run(lambda ps: PowerSign(ps, lr=0.01)), rtol=1e-10, atol=1e-12)


def test_decay_operands_match_powersigns_sign_decay(problem, all_close):
    all_close(problem.run(lambda ps: RuleOptimizer(ps, "g * exp(ld * sign(g) * sign(m))", lr=0.01, total_steps=30)),
              problem.run(lambda ps: PowerSign(ps, lr=0.01, sign_decay=linear_decay(30))), rtol=1e-10, atol=1e-12)


def test_accepts_a_rule_object_or_text():
    p = torch.nn.Parameter(torch.zeros(2))
    assert RuleOptimizer([p], parse("adam")).rule == RuleOptimizer([p], "adam").rule


def checkpoint(obj) -> dict:
    """Round trip through torch.save / torch.load (default weights_only=True), as a real checkpoint would."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)


@pytest.mark.parametrize("make", [
    lambda ps, seed: RuleOptimizer(ps, STOCHASTIC, lr=0.01, seed=seed),
    lambda ps, seed: RuleOptimizer(ps, "drop(m, 0.1) / (exp(g^2) + eps) * cd", lr=0.01, total_steps=20, seed=seed),
    lambda ps, seed: RuleOptimizer(ps, "adam", lr=0.01, seed=seed, foreach=False),
])
def test_resuming_from_a_state_dict_repeats_the_uninterrupted_run_bit_for_bit(problem, make):
    model = problem.model()
    problem.train(model, make(model.parameters(), 0), 20)

    first = problem.model()
    opt = make(first.parameters(), 0)
    problem.train(first, opt, 10)
    saved = checkpoint({"model": first.state_dict(), "opt": opt.state_dict()})

    resumed = problem.model()
    resumed.load_state_dict(saved["model"])
    opt = make(resumed.parameters(), 12345)  # a different seed: the saved generator state must win
    opt.load_state_dict(saved["opt"])
    problem.train(resumed, opt, 10)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_loading_a_state_dict_of_another_rule_is_refused():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="adam"):
        RuleOptimizer([p], "g").load_state_dict(RuleOptimizer([p], "adam").state_dict())


def test_param_groups_have_their_own_learning_rates(problem, all_close):
    def grouped(ps):
        first, *rest = list(ps)
        return RuleOptimizer([{"params": [first], "lr": 0.0}, {"params": rest}], "adam", lr=0.01)

    model = problem.model()
    start = [p.detach().clone() for p in model.parameters()]
    problem.train(model, grouped(model.parameters()), 5)
    after = list(model.parameters())
    assert torch.equal(after[0], start[0])
    assert not torch.equal(after[1], start[1])


def test_an_lr_scheduler_drives_the_learning_rate(problem, all_close):
    def run(make):
        model = problem.model()
        opt = make(model.parameters())
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        problem.train(model, opt, 10, scheduler)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
        return list(model.parameters())

    all_close(run(lambda ps: RuleOptimizer(ps, "g", lr=0.1)), run(lambda ps: torch.optim.SGD(ps, lr=0.1)))


@pytest.mark.parametrize("text, buffers", [
    ("g", set()),
    ("g * exp(sign(g) * sign(m))", {"m"}),
    ("rmsprop", {"v"}),
    ("adam", {"m", "v"}),
    ("y * (1e-2*w)", {"y"}),
])
def test_only_the_buffers_the_rule_needs_are_allocated(text, buffers):
    p = torch.nn.Parameter(torch.ones(3))
    opt = RuleOptimizer([p], text)
    assert not opt.state  # lazy
    p.grad = torch.ones(3)
    opt.step()
    assert opt.state[p].keys() == buffers | {"step"}


def test_params_without_grad_are_skipped():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = RuleOptimizer([a, b], "adam", lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b, torch.ones(2)) and b not in opt.state
    assert opt.state[a]["step"] == 1


def test_step_returns_the_closures_loss():
    p = torch.nn.Parameter(torch.ones(2))
    opt = RuleOptimizer([p], "g", lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 2.0
    assert torch.equal(p.detach(), torch.zeros(2))


def test_a_decay_rule_without_total_steps_is_refused():
    with pytest.raises(ValueError, match="total_steps"):
        RuleOptimizer([torch.nn.Parameter(torch.ones(2))], "g * exp(ld * sign(g) * sign(m))")


@pytest.mark.parametrize("kwargs, word", [
    (dict(lr=-1.0), "lr"),
    (dict(lr="0.1"), "lr"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=2.5), "total_steps"),
    (dict(seed="7"), "seed"),
])
def test_invalid_arguments_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RuleOptimizer([torch.nn.Parameter(torch.ones(2))], "adam", **kwargs)


def test_invalid_rule_text_raises_a_rule_error():
    with pytest.raises(RuleError):
        RuleOptimizer([torch.nn.Parameter(torch.ones(2))], "g +")


def test_a_rule_producing_nan_gives_nan_params_without_raising():
    p = torch.nn.Parameter(torch.ones(3))
    opt = RuleOptimizer([p], "log|g - g| - log|g - g|")
    p.grad = torch.ones(3)
    opt.step()
    assert torch.isnan(p).all()


@pytest.mark.parametrize("text", [STOCHASTIC, "adam * exp(m) + eps_t", "clip(rmsprop, 1e-5) + drop(m, 0.3) - y"])
def test_foreach_chunked_and_single_tensor_paths_agree_bit_for_bit(problem, text):
    runs = [problem.run(lambda ps, f=f: RuleOptimizer(ps, text, lr=0.01, seed=3, foreach=f), steps=5)
            for f in (True, None, False)]
    for a, b, c in zip(*runs, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_seed_none_is_reproducible_under_torch_manual_seed(problem):
    def run():
        torch.manual_seed(7)
        return problem.run(lambda ps: RuleOptimizer(ps, STOCHASTIC, lr=0.01), steps=3)

    for a, b in zip(run(), run(), strict=True):
        assert torch.equal(a, b)


def test_a_deep_copy_continues_like_the_original(problem):
    model = problem.model()
    opt = RuleOptimizer(model.parameters(), STOCHASTIC, lr=0.01, seed=0)
    problem.train(model, opt, 3)
    twin = copy.deepcopy({"model": model, "opt": opt})
    assert twin["opt"].rule == opt.rule
    problem.train(model, opt, 3)
    problem.train(twin["model"], twin["opt"], 3)
    for a, b in zip(model.parameters(), twin["model"].parameters(), strict=True):
        assert torch.equal(a, b)
