"""Decoupled weight decay (AdamW's): θ ← θ − lr·wd·θ before the step, per param group."""

import pytest
import torch

from optsearch.optim import AddSign, PowerSign, RuleOptimizer


def grouped(make, lr: float, decays: tuple[float, ...]):
    """An optimizer over the model's tensors split into param groups with weight decays `decays`."""
    def build(ps):
        ps = list(ps)
        groups = [{"params": ps[i::len(decays)], "weight_decay": wd} for i, wd in enumerate(decays)]
        return make(groups, lr)
    return build


def test_adam_rule_with_weight_decay_follows_torch_adamw_step_for_step(problem, all_close):
    decays = (0.0, 0.1, 0.9)
    ours = problem.run(grouped(lambda g, lr: RuleOptimizer(g, "adam", lr=lr), 1e-2, decays))
    adamw = problem.run(grouped(lambda g, lr: torch.optim.AdamW(g, lr=lr, eps=1e-8), 1e-2, decays))
    all_close(ours, adamw, rtol=1e-10, atol=1e-12)
    plain = problem.run(lambda ps: RuleOptimizer(ps, "adam", lr=1e-2))
    assert not all(torch.equal(a, b) for a, b in zip(ours, plain, strict=True))  # the decay did something


@pytest.mark.parametrize("make", [
    lambda g, lr: RuleOptimizer(g, "g * exp(sign(g) * sign(m))", lr=lr),
    lambda g, lr: PowerSign(g, lr=lr),
    lambda g, lr: AddSign(g, lr=lr),
    lambda g, lr: RuleOptimizer(g, "adam", lr=lr),
], ids=["RuleOptimizer", "PowerSign", "AddSign", "adam"])
def test_with_zero_gradients_each_group_shrinks_by_one_minus_lr_times_its_weight_decay(make):
    lr, decays = 0.5, (0.1, 0.4)
    ps = [torch.nn.Parameter(torch.full((4,), 2.0, dtype=torch.float64)) for _ in decays]
    opt = grouped(make, lr, decays)(ps)
    expected = [2.0, 2.0]
    for _ in range(3):
        for p in ps:
            p.grad = torch.zeros_like(p)
        opt.step()
        expected = [x * (1 - lr * wd) for x, wd in zip(expected, decays, strict=True)]
    for p, x in zip(ps, expected, strict=True):
        assert torch.equal(p.detach(), torch.full_like(p, x))


@pytest.mark.parametrize("make_ours, make_rule", [
    (lambda ps: PowerSign(ps, lr=0.01, weight_decay=0.3),
     lambda ps: RuleOptimizer(ps, "g * exp(sign(g) * sign(m))", lr=0.01, weight_decay=0.3)),
    (lambda ps: AddSign(ps, lr=0.01, weight_decay=0.3),
     lambda ps: RuleOptimizer(ps, "(1 + sign(g) * sign(m)) * g", lr=0.01, weight_decay=0.3)),
])
def test_sign_optimizers_with_weight_decay_follow_their_rules(problem, all_close, make_ours, make_rule):
    all_close(problem.run(make_ours), problem.run(make_rule), rtol=1e-10, atol=1e-12)


def test_a_rule_reading_w_sees_the_decayed_weights():
    p = torch.nn.Parameter(torch.full((2,), 4.0))
    opt = RuleOptimizer([p], "1e-1*w", lr=0.5, weight_decay=0.5)
    p.grad = torch.zeros(2)
    opt.step()  # θ' = 4·(1 − 0.25) = 3, then θ = 3 − 0.5·0.1·3
    assert torch.allclose(p.detach(), torch.full((2,), 3.0 - 0.15), rtol=0, atol=1e-12)
