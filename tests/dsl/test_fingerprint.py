import pytest

from optsearch.dsl import parse, rejection


@pytest.mark.parametrize(
    "a, b",
    [("g * m", "m * g"), ("g", "-(-g)"), ("g + m", "m + g"), ("sign(g) * sign(m)", "sign(m) * sign(g)"),
     ("drop(g, 0.1) * m", "m * drop(g, 0.1)"), ("g * 2", "g + g"), ("exp(g) * exp(m)", "exp(g + m)")],
)
def test_same_function_same_fingerprint(a, b):
    assert parse(a).fingerprint == parse(b).fingerprint


@pytest.mark.parametrize(
    "a, b",
    [("g", "m"), ("g", "-g"), ("clip(g, 1e-4)", "clip(g, 1e-5)"), ("g * ld", "g * cd"), ("adam", "rmsprop"),
     ("g - m", "m - g"), ("1e-4*w + g", "1e-3*w + g")],
)
def test_different_functions_differ(a, b):
    assert parse(a).fingerprint != parse(b).fingerprint


@pytest.mark.parametrize(
    "text, reason",
    [("1e-3*w", "does not depend on the gradient"), ("eps", "does not depend on the gradient"),
     ("g - g", "identically zero"), ("log|g - g|", "not finite"), ("ld * 2", "does not depend on the gradient")],
)
def test_rejections(text, reason):
    assert reason in rejection(parse(text))


@pytest.mark.parametrize("text", ["g", "adam", "g * exp(sign(g) * sign(m))", "adam * exp(m)", "exp(g) - exp(m)",
                                  "drop(m, 0.1) / (exp(g^2) + eps)"])
def test_useful_rules_are_accepted(text):
    assert rejection(parse(text)) is None
