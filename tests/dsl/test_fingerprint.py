import json
import sqlite3
from pathlib import Path

import pytest

from optsearch.dsl import parse, rejection
from optsearch.optim.decay import SCHEDULES


@pytest.mark.parametrize(
    "a, b",
    [("g * m", "m * g"), ("g", "-(-g)"), ("g + m", "m + g"), ("sign(g) * sign(m)", "sign(m) * sign(g)"),
     ("drop(g, 0.1) * m", "m * drop(g, 0.1)"), ("g * 2", "g + g"), ("exp(g) * exp(m)", "exp(g + m)"),
     ("rd * g", "cd * g"), ("g * exp(rd * sign(g) * sign(m))", "g * exp(cd * sign(g) * sign(m))")],
)
def test_same_function_same_fingerprint(a, b):
    assert parse(a).fingerprint == parse(b).fingerprint


@pytest.mark.parametrize(
    "a, b",
    [("g", "m"), ("g", "-g"), ("clip(g, 1e-4)", "clip(g, 1e-5)"), ("g * ld", "g * cd"), ("adam", "rmsprop"),
     ("g - m", "m - g"), ("1e-4*w + g", "1e-3*w + g"), ("rd(2) * g", "cd(1) * g"), ("rd * g", "ld * g"),
     ("rd(3) * g", "rd(5) * g")],
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


@pytest.mark.parametrize("total", [7, 200, 1001])
def test_plain_rd_and_plain_cd_are_one_schedule_on_every_step_of_a_run(total):
    """What lets them share a fingerprint: a run reads steps 0 … T − 1, and there they agree (to an ulp)."""
    rd, cd = SCHEDULES["rd"](total), SCHEDULES["cd"](total)
    assert [rd(s) for s in range(total)] == pytest.approx([cd(s) for s in range(total)], rel=0, abs=1e-15)
    assert rd(total) == 1.0 and cd(total) == 0.0  # past the run they part: rd restarts


def test_the_committed_stores_keys_are_todays_fingerprints_except_plain_rd_rules():
    """Version 2 changed only rules with plain `rd` (dsl.fingerprint.VERSION): every other stored key still holds."""
    store = Path(__file__).parents[2] / "docs" / "discovery" / "run2-ppo.sqlite"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT rule, tokens, fingerprint FROM trials").fetchall()
    kept = [(rule, fp) for rule, tokens, fp in rows if "rd" not in json.loads(tokens)]
    assert len(kept) > 1000
    assert [fp for _, fp in kept] == [parse(rule).fingerprint for rule, _ in kept]
