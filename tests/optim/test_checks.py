"""What every optimizer here checks, as torch's optimizers do: hyperparameters per param group, seeds,
foreign state dicts at load time, sparse gradients before anything is touched."""

import copy
import math

import pytest
import torch

from optsearch.dsl import RuleError
from optsearch.optim import AddSign, PowerSign, RuleOptimizer, zoo

OPTIMIZERS = {
    "RuleOptimizer": lambda ps, **kw: RuleOptimizer(ps, "adam", **kw),
    "PowerSign": PowerSign,
    "AddSign": AddSign,
}


def params(n: int = 2) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3)) for _ in range(n)]


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("lr", [math.nan, -0.1, math.inf])
def test_a_param_groups_bad_lr_is_refused_at_construction(make, lr):
    a, b = params()
    with pytest.raises(ValueError, match=rf"Invalid lr={lr!r}: must be a finite number >= 0"):
        make([{"params": [a]}, {"params": [b], "lr": lr}])


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("group", [{"lr": math.nan}, {"lr": -1.0}, {"weight_decay": -0.5}])
def test_a_bad_hyperparameter_is_refused_by_add_param_group(make, group):
    a, b = params()
    opt = make([a])
    with pytest.raises(ValueError, match=f"Invalid {next(iter(group))}="):
        opt.add_param_group({"params": [b], **group})
    assert len(opt.param_groups) == 1


def test_add_param_group_keeps_a_decay_rule_from_losing_total_steps():
    a, b = params()
    opt = RuleOptimizer([a], "g * exp(ld * sign(g) * sign(m))", total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        opt.add_param_group({"params": [b], "total_steps": None})


@pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5, "7"])
def test_a_seed_a_generator_cannot_take_is_refused_at_construction(seed):
    with pytest.raises(ValueError, match=r"Invalid seed=.*: must be an int in \[0, 2\*\*64\)"):
        RuleOptimizer(params(1), "drop(g, 0.3)", seed=seed)


def test_the_largest_seed_is_accepted():
    p = torch.nn.Parameter(torch.ones(3))
    opt = RuleOptimizer([p], "drop(g, 0.3)", seed=2**64 - 1)
    p.grad = torch.ones(3)
    opt.step()


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("kwargs, word", [(dict(weight_decay=-1e-4), "weight_decay"),
                                          (dict(weight_decay=math.nan), "weight_decay"),
                                          (dict(foreach="yes"), "foreach")])
def test_bad_weight_decay_or_foreach_is_refused_by_name(make, kwargs, word):
    with pytest.raises(ValueError, match=f"Invalid {word}="):
        make(params(1), **kwargs)


def trained(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    for p in (p for g in opt.param_groups for p in g["params"]):
        p.grad = torch.full_like(p, 0.5)
    opt.step()
    return opt


@pytest.mark.parametrize("make_other, make_ours", [
    (lambda ps: torch.optim.Adam(ps), lambda ps: RuleOptimizer(ps, "adam")),
    (lambda ps: RuleOptimizer(ps, "adam"), lambda ps: RuleOptimizer(ps, "g * exp(sign(g) * sign(m))")),
    (lambda ps: torch.optim.Adam(ps), PowerSign),
    (AddSign, PowerSign),
    (PowerSign, lambda ps: RuleOptimizer(ps, "g * exp(sign(g) * sign(m))")),
])
def test_another_optimizers_state_dict_is_refused_at_load_time(make_other, make_ours):
    saved = trained(make_other(params())).state_dict()
    ours = make_ours(params())
    with pytest.raises(ValueError, match="cannot load a state dict saved by .* into"):
        ours.load_state_dict(saved)
    assert not ours.state


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
def test_a_sparse_gradient_is_refused_before_any_parameter_or_state_is_touched(make):
    dense, sparse = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = trained(make([{"params": [dense]}, {"params": [sparse]}]))
    before = [dense.detach().clone(), sparse.detach().clone()]
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[dense].items()}
    dense.grad = torch.ones(3)
    sparse.grad = torch.tensor([1.0, 0.0, 0.0]).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()
    assert torch.equal(dense, before[0]) and torch.equal(sparse, before[1])
    assert opt.state[dense].keys() == state.keys()
    assert all(torch.equal(torch.as_tensor(opt.state[dense][k]), torch.as_tensor(v)) for k, v in state.items())


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
def test_a_tensor_lr_is_refused_as_unsupported(make):
    with pytest.raises(ValueError, match="Invalid lr: a Tensor lr is not supported; must be a finite number >= 0"):
        make(params(1), lr=torch.tensor(0.1))


def snapshot(opt: torch.optim.Optimizer) -> tuple[list[torch.Tensor], dict]:
    """Every parameter and a deep copy of the state dict, to compare after a refused step."""
    ps = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    return ps, copy.deepcopy(opt.state_dict())


def assert_unchanged(opt: torch.optim.Optimizer, before: tuple[list[torch.Tensor], dict]) -> None:
    ps, state_dict = before
    assert all(torch.equal(p, q) for p, q in zip((p for g in opt.param_groups for p in g["params"]), ps, strict=True))
    now = opt.state_dict()
    assert now["state"].keys() == state_dict["state"].keys()
    for i, state in state_dict["state"].items():
        assert now["state"][i].keys() == state.keys()
        assert all(torch.equal(torch.as_tensor(now["state"][i][k]), torch.as_tensor(v)) for k, v in state.items())


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize(("key", "value"), [("lr", math.nan), ("lr", torch.tensor(0.1)), ("weight_decay", -1.0)])
def test_a_hyperparameter_broken_after_construction_is_refused_before_any_group_moves(make, key, value):
    """A scheduler or a hand edit of a later group: the first group must not have stepped when it is refused."""
    opt = trained(make([{"params": params(1)}, {"params": params(1)}, {"params": params(1)}]))
    opt.param_groups[2][key] = value
    before = snapshot(opt)
    with pytest.raises(ValueError, match=f"param group 2: Invalid {key}"):
        opt.step()
    assert_unchanged(opt, before)


@pytest.mark.parametrize("family", [PowerSign, AddSign])
@pytest.mark.parametrize("bad", [math.nan, "0.5", None])
def test_a_sign_decay_that_returns_no_finite_number_is_refused_before_anything_moves(family, bad):
    """Only the last group's decay is bad (its parameter is at its first step): no group may have moved."""
    broken = False
    opt = family([{"params": params(1)}], sign_decay=lambda step: bad if broken and step == 0 else 1.0)
    trained(trained(opt))
    broken = True
    opt.add_param_group({"params": params(1)})
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"sign_decay\(0\) returned .*: must be a finite number"):
        trained(opt)
    assert_unchanged(opt, before)


def test_rule_optimizer_takes_zoo_names_as_every_other_entry_point_does():
    assert RuleOptimizer(params(1), "powersign").rule == zoo["powersign"].rule
    assert RuleOptimizer(params(1), "nos12", seed=0).rule == zoo["nos12"].rule
    with pytest.raises(RuleError, match="neither an optimizer name nor a rule.*a zoo name"):
        RuleOptimizer(params(1), "powersine")
