import math

import pytest
import torch

from optsearch.dsl import parse
from optsearch.optim import (
    addsign_update,
    bias_correction,
    compute_update,
    compute_updates,
    init_state,
    powersign_update,
    update_moment,
)
from optsearch.optim.decay import cosine_decay, linear_decay, restart_decay
from optsearch.optim.functional import foreach_chunks

GRADS = [torch.tensor([0.5, -2.0, 0.0, 3.0], dtype=torch.float64) * k for k in (1.0, -0.5, 2.0)]
PARAM = torch.tensor([1.0, -1.0, 0.25, 4.0], dtype=torch.float64)


def run(text: str, steps: int = 3, total_steps: int | None = None, param: torch.Tensor = PARAM) -> torch.Tensor:
    """Δ of the `steps`-th update after feeding GRADS (cycled)."""
    rule = parse(text)
    state = init_state(rule, param)
    for t in range(1, steps + 1):
        delta = compute_update(rule, GRADS[(t - 1) % 3], param, state, t, total_steps)
    return delta


def ema(power: int, beta: float) -> torch.Tensor:
    avg = torch.zeros_like(PARAM)
    for g in GRADS:
        avg = beta * avg + (1 - beta) * g**power
    return avg / (1 - beta**3)  # bias-corrected after 3 steps


M, V, Y = ema(1, 0.9), ema(2, 0.999), ema(3, 0.999)
G = GRADS[-1]


@pytest.mark.parametrize("token, expected", [
    ("g", G),
    ("g^2", G**2),
    ("g^3", G**3),
    ("m", M),
    ("v", V),
    ("y", Y),
    ("sign(g)", torch.sign(G)),
    ("sign(m)", torch.sign(M)),
    ("1", torch.ones(4, dtype=torch.float64)),
    ("2", torch.full((4,), 2.0, dtype=torch.float64)),
    ("1e-4*w", 1e-4 * PARAM),
    ("1e-1*w", 1e-1 * PARAM),
    ("adam", M / (V.sqrt() + 1e-8)),
    ("rmsprop", G / (V.sqrt() + 1e-8)),
])
def test_operand_values_follow_the_paper(token, expected):
    torch.testing.assert_close(run(token), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("token, decay", [
    ("ld", linear_decay(10)),
    ("cd", cosine_decay(10)),
    ("cd(2)", cosine_decay(10, 2)),
    ("rd", restart_decay(10)),
    ("rd(3)", restart_decay(10, 3)),
])
def test_decay_operands_are_read_at_step_minus_one(token, decay):
    assert run(token, steps=1, total_steps=10).unique().item() == 1.0
    for step in (2, 5, 11, 15):
        assert run(token, steps=step, total_steps=10).unique().item() == pytest.approx(decay(step - 1), abs=1e-15)


def test_running_averages_are_updated_in_place_before_the_update():
    rule = parse("m")
    state = init_state(rule, PARAM)
    delta = compute_update(rule, GRADS[0], PARAM, state, 1)
    torch.testing.assert_close(state["m"], 0.1 * GRADS[0])
    torch.testing.assert_close(delta, GRADS[0])  # bias-corrected: 0.1·g / (1 − 0.9)


def test_state_holds_only_the_running_averages_the_rule_reads():
    assert init_state(parse("g * exp(sign(g) * sign(m))"), PARAM).keys() == {"m"}
    assert init_state(parse("rmsprop"), PARAM).keys() == {"v"}
    assert init_state(parse("adam + y"), PARAM).keys() == {"m", "v", "y"}
    assert init_state(parse("g - clip(g^2, 1e-4)"), PARAM) == {}


def test_eps_is_gaussian_with_std_0_01():
    noise = compute_update(parse("eps"), torch.zeros(200_000), torch.zeros(200_000), {}, 1,
                           generator=torch.Generator().manual_seed(0))
    assert abs(noise.mean().item()) < 1e-4
    assert noise.std().item() == pytest.approx(0.01, rel=0.01)


def test_eps_t_anneals_with_variance_one_over_1_plus_s_to_the_0_55():
    gen = torch.Generator().manual_seed(0)
    for step in (1, 101):
        noise = compute_update(parse("eps_t"), torch.zeros(200_000), torch.zeros(200_000), {}, step, generator=gen)
        assert noise.var().item() == pytest.approx(1 / step**0.55, rel=0.02)


def test_the_same_generator_seed_gives_the_same_noise_and_dropout():
    rule = parse("drop(m, 0.1) / (exp(g^2) + eps)")

    def delta(seed):
        return compute_update(rule, G, PARAM, init_state(rule, PARAM), 1, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(delta(3), delta(3))
    assert not torch.equal(delta(3), delta(4))


def test_a_rule_with_a_decay_needs_total_steps():
    with pytest.raises(ValueError, match="total_steps"):
        compute_update(parse("g * exp(ld * sign(g) * sign(m))"), G, PARAM, {"m": torch.zeros(4)}, 1)


def test_steps_are_one_based():
    with pytest.raises(ValueError, match="1-based"):
        compute_update(parse("adam"), G, PARAM, init_state(parse("adam"), PARAM), 0)


def test_a_scalar_rule_gives_a_delta_shaped_like_the_param():
    assert run("2 * ld", steps=1, total_steps=5).shape == PARAM.shape


@pytest.mark.parametrize("text", ["adam * exp(m)", "clip(rmsprop, 1e-5) + y - 1e-2*w",
                                  "g * exp(cd * sign(g) * sign(m))"])
def test_slices_of_stacked_weights_update_as_the_whole_stack(text):
    """The evaluator trains K models as one stacked tensor; updating each slice must equal updating the stack."""
    rule = parse(text)
    gen = torch.Generator().manual_seed(0)
    stacked = torch.randn(3, 4, 5, generator=gen)
    grads = [torch.randn(3, 4, 5, generator=gen) for _ in range(4)]
    whole, parts = init_state(rule, stacked), init_state(rule, stacked)
    for t, g in enumerate(grads, 1):
        delta = compute_update(rule, g, stacked, whole, t, total_steps=10)
        sliced = [compute_update(rule, g[k], stacked[k], {n: b[k] for n, b in parts.items()}, t, total_steps=10)
                  for k in range(3)]
        torch.testing.assert_close(torch.stack(sliced), delta, rtol=0, atol=0)
    for name in rule.state:
        assert torch.equal(whole[name], parts[name])


def test_list_and_single_tensor_versions_agree_bit_for_bit():
    rule = parse("drop(g, 0.3) * exp(sign(g) * sign(m)) + adam * eps_t")
    shapes = [(3, 4), (7,), (2, 2, 2)]
    params = [torch.randn(s) for s in shapes]
    grads = [torch.randn(s) for s in shapes]
    states_a = [init_state(rule, p) for p in params]
    states_b = [init_state(rule, p) for p in params]
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in (1, 2):
        many = compute_updates(rule, grads, params, states_a, [t] * 3, generator=gen_a)
        one = [compute_update(rule, g, p, s, t, generator=gen_b)
               for g, p, s in zip(grads, params, states_b, strict=True)]
        for a, b in zip(many, one, strict=True):
            assert torch.equal(a, b)


def test_half_precision_tensors_work():
    rule = parse("adam * exp(sign(g) * sign(m)) + 2 * eps")
    p = torch.randn(8, dtype=torch.bfloat16)
    delta = compute_update(rule, torch.randn(8, dtype=torch.bfloat16), p, init_state(rule, p), 1)
    assert delta.dtype == torch.bfloat16 and math.isfinite(delta.float().sum().item())


def test_foreach_chunks_cover_every_tensor_in_order():
    tensors = [torch.zeros(n) for n in (10, 70_000, 5, 5, 60_000, 6_000)]
    assert foreach_chunks(tensors, True) == [slice(0, 6)]
    assert foreach_chunks(tensors, False) == [slice(i, i + 1) for i in range(6)]
    assert foreach_chunks(tensors) == [slice(0, 1), slice(1, 2), slice(2, 5), slice(5, 6)]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_update_moment_is_the_running_average_of_the_orderth_power(order):
    buffers = [torch.zeros_like(PARAM)]
    for g in GRADS:
        update_moment(buffers, [g], 0.8, order)
    expected = torch.zeros_like(PARAM)
    for g in GRADS:
        expected = 0.8 * expected + 0.2 * g**order
    torch.testing.assert_close(buffers[0], expected, rtol=1e-14, atol=1e-15)


def test_update_moment_refuses_an_order_it_does_not_know():
    with pytest.raises(ValueError, match="order=4"):
        update_moment([torch.zeros(2)], [torch.ones(2)], 0.9, 4)


def test_bias_correction_unbiases_a_constant_signal():
    buffers = [torch.zeros(3, dtype=torch.float64)]
    for _ in range(5):
        update_moment(buffers, [torch.full((3,), 2.0, dtype=torch.float64)], 0.9)
    torch.testing.assert_close(buffers[0] / bias_correction(0.9, 5), torch.full((3,), 2.0, dtype=torch.float64))


@pytest.mark.parametrize("kernel, hyper", [(powersign_update, dict(base=3.0)), (addsign_update, dict(alpha=0.5))])
def test_sign_kernels_give_the_same_bits_on_a_list_or_tensor_by_tensor(kernel, hyper):
    def run_sign(split: bool) -> list[torch.Tensor]:
        params = [PARAM.clone(), -2 * PARAM]
        ms = [torch.zeros_like(p) for p in params]
        for t, g in enumerate(GRADS):
            grads, decays = [g, g.flip(0)], [0.5 * t, 1.0]
            kw = dict(lr=0.1, beta=0.8, weight_decay=0.2, **hyper)
            if split:
                for i in range(2):
                    kernel(params[i:i + 1], grads[i:i + 1], ms[i:i + 1], decays[i:i + 1], **kw)
            else:
                kernel(params, grads, ms, decays, **kw)
        return params + ms

    for a, b in zip(run_sign(False), run_sign(True), strict=True):
        assert torch.equal(a, b)
