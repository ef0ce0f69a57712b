"""The torch.optim.Optimizer contract, run on every optimizer here and on an exported file, with torch's Adam as
the reference that shows each check is one torch's own optimizers pass: state_dict round trips (through
torch.save / torch.load), hooks, closures, param groups, deepcopy and pickle, complex parameters, LR schedulers."""

import copy
import importlib.util
import io
import pickle
import sys

import pytest
import torch

from optsearch.exporters import export
from optsearch.optim import AddSign, PowerSign, RuleOptimizer, cosine_decay

SEED = 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An exported stochastic rule (dropout: a generator in its state), importable by name so it pickles."""
    path = tmp_path_factory.mktemp("contract") / "contract_exported_nos12.py"
    path.write_text(export("nos12", name="Nos12"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[path.stem]


MAKERS = {
    "torch.Adam": lambda ps, module, lr: torch.optim.Adam(ps, lr=lr),
    "RuleOptimizer(adam)": lambda ps, module, lr: RuleOptimizer(ps, "adam", lr=lr),
    "RuleOptimizer(nos12)": lambda ps, module, lr: RuleOptimizer(ps, "nos12", lr=lr, seed=SEED),
    "RuleOptimizer(sign, ld)": lambda ps, module, lr: RuleOptimizer(ps, "g * exp(ld * sign(g) * sign(m))", lr=lr,
                                                                    total_steps=10, weight_decay=0.1),
    "PowerSign": lambda ps, module, lr: PowerSign(ps, lr=lr, sign_decay=cosine_decay(10), weight_decay=0.1),
    "AddSign": lambda ps, module, lr: AddSign(ps, lr=lr),
    "exported nos12": lambda ps, module, lr: module.Nos12(ps, lr=lr, seed=SEED),
}


@pytest.fixture(params=list(MAKERS))
def make(request, exported):
    """make(params_or_groups, lr=0.01) -> a fresh optimizer of the kind under test."""
    return lambda ps, lr=0.01: MAKERS[request.param](ps, exported, lr)


def new_params(dtype=torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=dtype).requires_grad_() for shape in ((3, 2), (4,))]


def set_grads(params: list[torch.Tensor], t: int) -> None:
    gen = torch.Generator().manual_seed(100 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.1 * p.detach()


def run(opt, params, steps: range) -> None:
    for t in steps:
        set_grads(params, t)
        opt.step()


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_state_dict_saved_and_loaded_resumes_the_same_run(make):
    params = new_params()
    opt = make(params)
    run(opt, params, range(3))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    resumed_params = [p.detach().clone().requires_grad_() for p in params]
    resumed = make(resumed_params, lr=0.5)  # the lr comes back from the state dict too
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    run(opt, params, range(3, 6))
    run(resumed, resumed_params, range(3, 6))
    assert same(params, resumed_params)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_params_and_optimizer_steps_as_the_original(make, how):
    params = new_params()
    opt = make(params)
    run(opt, params, range(2))
    pair = (params, opt)
    copy_params, copy_opt = copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
    run(opt, params, range(2, 4))
    run(copy_opt, copy_params, range(2, 4))
    assert same(params, copy_params)


def test_step_and_state_dict_hooks_are_called(make):
    params = new_params()
    opt = make(params)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("step pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("step post"))
    opt.register_state_dict_pre_hook(lambda o: calls.append("state_dict pre"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("state_dict post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load pre"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load post"))
    run(opt, params, range(1))
    opt.load_state_dict(opt.state_dict())
    assert calls == ["step pre", "step post", "state_dict pre", "state_dict post", "load pre", "load post"]


def test_a_closure_is_evaluated_with_grad_and_its_loss_returned(make):
    params = new_params()
    opt = make(params)
    before = [p.detach().clone() for p in params]

    def closure():
        opt.zero_grad()
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(sum((b**2).sum().item() for b in before))
    assert all(not torch.equal(p, b) for p, b in zip(params, before, strict=True))


def test_an_added_param_group_takes_the_defaults_and_its_own_lr(make):
    params = new_params()
    opt = make(params[:1])
    run(opt, params[:1], range(1))
    frozen = params[1].detach().clone()
    opt.add_param_group({"params": params[1:], "lr": 0.0})
    assert opt.param_groups[1].keys() == opt.param_groups[0].keys()
    run(opt, params, range(1, 3))
    assert torch.equal(params[1], frozen)
    opt.param_groups[1]["lr"] = 0.01
    run(opt, params, range(3, 4))
    assert not torch.equal(params[1], frozen)


def test_an_lr_scheduler_sets_the_lr_the_step_uses(make):
    params = new_params()
    opt = make(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 if epoch < 1 else 0.0)
    run(opt, params, range(1))
    scheduler.step()
    assert all(group["lr"] == 0.0 for group in opt.param_groups)
    after_one = [p.detach().clone() for p in params]
    run(opt, params, range(1, 3))
    assert same(params, after_one)  # lr 0: neither the rule nor the weight decay moves anything


def test_a_complex_parameter_is_updated_as_its_real_view(make):
    """torch.optim's rule for complex parameters: the same as the real view (real, imaginary) run alone."""
    complex_params = [torch.view_as_complex(p.detach().reshape(-1, 2).clone()).requires_grad_()
                      for p in new_params()]
    real_params = [torch.view_as_real(c.detach()).clone().requires_grad_() for c in complex_params]
    on_complex, on_real = make(complex_params), make(real_params)
    for t in range(4):
        set_grads(real_params, t)
        for c, r in zip(complex_params, real_params, strict=True):
            c.grad = torch.view_as_complex(r.grad.clone())
        on_complex.step()
        on_real.step()
    assert same([torch.view_as_real(c.detach()) for c in complex_params], real_params)


@pytest.mark.parametrize("foreach", [False, True])
def test_rule_optimizer_adam_on_a_complex_parameter_matches_torch_adam(foreach):
    ours = [torch.randn(5, dtype=torch.complex64, generator=torch.Generator().manual_seed(1)).requires_grad_()]
    theirs = [ours[0].detach().clone().requires_grad_()]
    opt_ours = RuleOptimizer(ours, "adam", lr=0.1, foreach=foreach)
    opt_theirs = torch.optim.Adam(theirs, lr=0.1, eps=1e-8, foreach=foreach)
    for t in range(10):
        set_grads(ours, t)
        theirs[0].grad = ours[0].grad.clone()
        opt_ours.step()
        opt_theirs.step()
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-6)
    assert opt_ours.state[ours[0]]["m"].is_complex()  # state is kept as the parameter is, as torch keeps it


def test_powersign_steps_a_real_and_a_complex_parameter_together():
    """The issue's case: a real and a complex parameter in one group, with weight decay."""
    real, cplx = torch.ones(3, requires_grad=True), torch.ones(3, dtype=torch.complex64, requires_grad=True)
    real.grad, cplx.grad = torch.full((3,), 0.5), torch.full((3,), 0.5 + 0.5j)
    PowerSign([real, cplx], weight_decay=0.1).step()
    assert torch.equal(torch.view_as_real(cplx.detach())[:, 0], real.detach())
