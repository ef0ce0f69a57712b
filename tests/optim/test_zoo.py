import re

import pytest
import torch

from optsearch.dsl import RuleError, parse
from optsearch.optim import PAPER_RULES, AddSign, PowerSign, RuleOptimizer, make_optimizer, resolve, zoo


def test_every_paper_rule_is_in_the_zoo_in_order():
    assert [str(zoo[f"nos{i}"].rule) for i in range(1, 17)] == [str(parse(t)) for t in PAPER_RULES]


def test_zoo_names_the_baselines_and_sign_rules():
    assert zoo["sgd"].rule == parse("g")
    assert zoo["powersign"].rule == parse("g * exp(sign(g) * sign(m))")
    assert zoo["addsign-cd"].rule == parse("(1 + cd * sign(g) * sign(m)) * g")
    assert all(entry.name == name and entry.description for name, entry in zoo.items())


@pytest.mark.parametrize("name", ["sgd", "adam", "powersign", "addsign", "powersign-ld", "powersign-cd",
                                  "powersign-rd", "addsign-ld", "addsign-cd", "addsign-rd"])
def test_make_optimizers_shortcut_is_the_zoo_rule_step_for_step(problem, all_close, name):
    lr = 0.01
    fast = problem.run(lambda ps: make_optimizer(name, ps, lr=lr, total_steps=30), steps=30)
    rule = problem.run(lambda ps: RuleOptimizer(ps, zoo[name].rule, lr=lr, total_steps=30), steps=30)
    all_close(fast, rule, rtol=1e-10, atol=1e-12)


def test_make_optimizer_picks_the_fast_class():
    ps = [torch.nn.Parameter(torch.ones(2))]
    assert isinstance(make_optimizer("powersign-cd", ps, lr=0.1, total_steps=5), PowerSign)
    assert isinstance(make_optimizer("addsign", ps, lr=0.1), AddSign)
    momentum = make_optimizer("momentum", ps, lr=0.1)
    assert isinstance(momentum, torch.optim.SGD) and momentum.param_groups[0]["momentum"] == 0.9
    assert make_optimizer("nos5", ps, lr=0.1, seed=1).rule == parse(PAPER_RULES[4])
    assert make_optimizer("adam * exp(m)", ps, lr=0.1).rule == zoo["nos11"].rule


def test_make_optimizer_explains_unknown_names_and_missing_total_steps():
    ps = [torch.nn.Parameter(torch.ones(2))]
    with pytest.raises(RuleError, match="'adamw' is neither an optimizer name nor a rule.*sgd, adam"):
        make_optimizer("adamw", ps, lr=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        make_optimizer("powersign-ld", ps, lr=0.1)


def test_resolve_turns_a_zoo_name_rule_text_or_rule_into_a_rule():
    assert resolve("nos11") == zoo["nos11"].rule
    assert resolve("adam * exp(m)") == parse("adam * exp(m)")
    rule = parse("g")
    assert resolve(rule) is rule


@pytest.mark.parametrize("text", ["adamw", "g +", ""])
def test_resolve_names_the_bad_input_and_the_zoo_names_in_one_line(text):
    with pytest.raises(RuleError, match=re.escape(f"{text!r} is neither an optimizer name nor a rule")) as err:
        resolve(text)
    assert "powersign-ld" in str(err.value) and "nos16" in str(err.value) and "\n" not in str(err.value)


def test_resolve_refuses_what_is_not_text_or_a_rule():
    with pytest.raises(TypeError, match="int"):
        resolve(3)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.AdamW), ("sgd", torch.optim.SGD),
                                       ("momentum", torch.optim.SGD), ("powersign-cd", PowerSign),
                                       ("addsign", AddSign), ("nos1", RuleOptimizer)])
def test_make_optimizer_passes_weight_decay_through(name, cls):
    opt = make_optimizer(name, [torch.nn.Parameter(torch.ones(2))], lr=0.1, total_steps=5, weight_decay=0.25)
    assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == 0.25


def test_make_optimizers_adam_with_weight_decay_is_the_zoo_rule_with_it(problem, all_close):
    fast = problem.run(lambda ps: make_optimizer("adam", ps, lr=0.01, weight_decay=0.5), steps=30)
    rule = problem.run(lambda ps: RuleOptimizer(ps, "adam", lr=0.01, weight_decay=0.5), steps=30)
    all_close(fast, rule, rtol=1e-10, atol=1e-12)
