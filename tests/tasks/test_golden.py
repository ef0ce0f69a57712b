"""The evaluator reproduces, bit for bit, trials of the committed discovery run (docs/discovery)."""

from pathlib import Path

import pytest

from optsearch.engine import Store
from optsearch.tasks import evaluate
from optsearch.tasks.registry import fast_bf16

DB = Path(__file__).parents[2] / "docs" / "discovery" / "ppo-seed0.sqlite"
RULES = ("drop(m, 0.1) + drop(g, 0.3)", "adam + drop(adam, 0.5)", "-sign(g) + exp(rmsprop)",
         "drop(1e-3*w, 0.5) + drop(sign(m), 0.1)")


@pytest.mark.skipif(not fast_bf16("cpu"), reason="the run used bf16 autocast (precision auto on a bf16 CPU)")
def test_rules_of_the_discovery_run_get_their_stored_results_again(tmp_path):
    copy = tmp_path / "run.sqlite"
    copy.write_bytes(DB.read_bytes())  # opening a store writes to it; keep the committed file untouched
    with Store(copy) as store:
        stored = {t.rule: t for t in store.trials() if t.rule in RULES}
        config = store.get_meta("config")
    assert set(stored) == set(RULES)
    evaluations = evaluate(list(RULES), task=config["task"], steps=config["steps"], seed=config["seed"],
                           precision=config["precision"])
    for ev in evaluations:
        trial = stored[ev.rule]
        assert [p.val_acc for p in ev.per_lr] == [p["val_acc"] for p in trial.per_lr], ev.rule
        assert ev.reward == trial.reward
