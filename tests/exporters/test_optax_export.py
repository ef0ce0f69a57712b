import math
import sys
from pathlib import Path

import pytest
import torch

from optsearch.exporters import export
from optsearch.optim import RuleOptimizer
from optsearch.optim.zoo import zoo

optax = pytest.importorskip("optax", reason="the optax export is tested where jax and optax are installed "
                                            "(pip install optsearch[jax])")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import run_exported  # noqa: E402
from test_torch_export import relative_difference, rule_optimizer_trajectory  # noqa: E402

DETERMINISTIC = [name for name, entry in zoo.items() if not entry.rule.stochastic]
STOCHASTIC = [name for name, entry in zoo.items() if entry.rule.stochastic]


def load(tmp_path, rule: str, name: str | None = None):
    path = tmp_path / "exported_optax.py"
    path.write_text(export(rule, to="optax", name=name))
    return getattr(run_exported.load(path), name or rule.replace("-", "_"))


def optax_trajectory(make, steps: int = run_exported.STEPS) -> torch.Tensor:
    """run_exported.trajectory's problem (same start, same gradient sequence, two groups with their own lr) in
    optax: one transformation per group."""
    gen = torch.Generator().manual_seed(0)
    params = [jnp.asarray(torch.randn(s, generator=gen).numpy()) for s in run_exported.SHAPES]
    noise = [[jnp.asarray(0.5 * torch.randn(s, generator=gen).numpy()) for s in run_exported.SHAPES]
             for _ in range(steps)]
    groups = [slice(0, 2), slice(2, 3)]
    txs = [make(lr) for lr in run_exported.LRS]
    states = [tx.init(params[g]) for tx, g in zip(txs, groups, strict=True)]
    update = [jax.jit(tx.update) for tx in txs]
    rows = []
    for t in range(steps):
        grads = [n + 0.1 * p for n, p in zip(noise[t], params, strict=True)]
        new = []
        for i, g in enumerate(groups):
            updates, states[i] = update[i](grads[g], states[i], params[g])
            new += optax.apply_updates(params[g], updates)
        params = new
        rows.append(torch.cat([torch.tensor(jax.device_get(p)).flatten() for p in params]))
    return torch.stack(rows)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_optax_export_follows_rule_optimizer(tmp_path, name):
    make = load(tmp_path, name)
    kwargs = {"total_steps": run_exported.TOTAL_STEPS} if zoo[name].rule.needs_total_steps else {}
    got = optax_trajectory(lambda lr: make(lr, **kwargs))
    # float32 kernels differ by an ulp here and there: 1e-5 relative (absolute 1e-7 for weights under 0.01)
    assert relative_difference(got, rule_optimizer_trajectory(name), floor=1e-2) <= 1e-5


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_optax_export_is_finite_reproducible_and_noisy_like_the_rule(tmp_path, name):
    make = load(tmp_path, name)
    first, again = (optax_trajectory(lambda lr: make(lr, seed=3), steps=20) for _ in range(2))
    other_seed = optax_trajectory(lambda lr: make(lr, seed=4), steps=20)
    assert torch.isfinite(first).all() and first.shape == (20, sum(math.prod(s) for s in run_exported.SHAPES))
    assert torch.equal(first, again) and not torch.equal(first, other_seed)
    # one step moves each weight by lr·Δ of the same law as RuleOptimizer's: close to its draw, not equal
    reference = rule_optimizer_trajectory(name)[0]
    assert (first[0] - reference).abs().max() < 0.1


def test_dropout_keeps_the_expected_fraction_and_rescales(tmp_path):
    make = load(tmp_path, "g + drop(m, 0.3)", name="found")
    tx = make(1.0)
    grads = {"w": jnp.ones((200, 200))}
    state = tx.init(grads)
    updates, _ = tx.update(grads, state, grads)
    # Δ = g + drop(m̂) with m̂ = 1 at step 1: 1 + 1/0.7 where kept (70%), 1 where dropped
    values = -updates["w"]
    kept = jnp.isclose(values, 1 + 1 / 0.7)
    assert jnp.all(kept | jnp.isclose(values, 1.0))
    assert abs(float(kept.mean()) - 0.7) < 0.01


def test_adam_export_with_weight_decay_matches_torch_adamw(tmp_path):
    """(optax.adamw itself computes 1 - 0.999^t in float32 and drifts 2e-5 from torch's AdamW.)"""
    make = load(tmp_path, "adam")
    got = optax_trajectory(lambda lr: make(lr, weight_decay=0.1))
    want = run_exported.trajectory(lambda groups: torch.optim.AdamW(groups, eps=1e-8, weight_decay=0.1))
    assert relative_difference(got, want, floor=1e-2) <= 1e-5


@pytest.mark.parametrize("name", ["powersign", "addsign-cd", "nos3", "nos10"])
def test_optax_weight_decay_follows_rule_optimizer(tmp_path, name):
    make = load(tmp_path, name)
    kwargs = {"total_steps": run_exported.TOTAL_STEPS} if zoo[name].rule.needs_total_steps else {}
    got = optax_trajectory(lambda lr: make(lr, weight_decay=0.1, **kwargs))
    want = run_exported.trajectory(lambda g: RuleOptimizer(g, zoo[name].rule, weight_decay=0.1, **kwargs))
    # optax adds -lr·(Δ + wd·θ) where torch scales θ by 1 - lr·wd: float32 rounds them apart. On powersign, 100
    # steps of RuleOptimizer in float32 drift 1.5e-5 (floor 1e-2) from float64, so weights under 0.1 are compared
    # absolutely (1e-6), the rest relatively (1e-5).
    assert relative_difference(got, want, floor=0.1) <= 1e-5
    assert not torch.equal(want, rule_optimizer_trajectory(name))


@pytest.mark.parametrize("name", ["adam", "powersign", "addsign-ld"])
def test_a_complex_leaf_steps_as_its_real_view_like_rule_optimizer(tmp_path, name):
    """As torch's optimizers (and RuleOptimizer) do: a complex parameter moves as its real view (real, imaginary)."""
    make = load(tmp_path, name)
    kwargs = {"total_steps": 10} if zoo[name].rule.needs_total_steps else {}
    tx = make(0.01, **kwargs)
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(4, 3, 2, generator=gen)
    grads = [torch.randn(4, 3, 2, generator=gen) for _ in range(5)]
    as_complex = [torch.view_as_complex(g).numpy() for g in grads]
    params = {"w": jnp.asarray(torch.view_as_complex(start).numpy())}
    state = tx.init(params)
    for g in as_complex:
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
    assert params["w"].dtype == jnp.complex64
    w = torch.view_as_complex(start.clone()).requires_grad_()
    opt = RuleOptimizer([w], rule=name, lr=0.01, **kwargs)
    for g in grads:
        w.grad = torch.view_as_complex(g.clone())
        opt.step()
    got = torch.view_as_real(torch.from_numpy(jax.device_get(params["w"]).copy()))
    assert torch.allclose(got, torch.view_as_real(w.detach()), rtol=1e-5, atol=1e-6)
