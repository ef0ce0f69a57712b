"""`optsearch.evaluate` checks every argument before training: before, `evaluate([])` returned [] silently and
`evaluate(None)`, `evaluate("adam", seeds=3)` raised raw TypeErrors. A count of seeds now means that many seeds."""

import pytest
import torch
from torch import nn

from optsearch.tasks import SettingsError, Task, evaluate


def tiny() -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return Task.from_tensors("tiny_input", lambda: nn.Linear(4, 2), train=(x[:40], y[:40]), val=(x[40:50], y[40:50]),
                             test=(x[50:], y[50:]), steps=3, batch_size=8)


@pytest.mark.parametrize("rules, keywords, message", [
    ([], {}, r"rules: got \[\]; allowed: a rule .* or a non-empty list of them"),
    (None, {}, "rules: got None; allowed: a rule"),
    ({"adam": 1}, {}, "rules: got {'adam': 1}"),
    (["adam", None], {}, r"rules\[1\]: got None"),
    ("adam", {"seeds": 0}, "seeds: got 0; allowed: a count >= 1 or a non-empty list of distinct whole numbers"),
    ("adam", {"seeds": True}, "seeds: got True"),
    ("adam", {"seeds": "3"}, "seeds: got '3'"),
    ("adam", {"progress": 5}, r"progress: got 5; allowed: a function \(done, total\) or None"),
    ("adam", {"data_dir": 5}, "data_dir: got 5"),
    ("adam", {"task": None}, "task: a task is a name"),
    ("adam", {"device": None}, "device: got 'None'"),
])
def test_bad_arguments_are_one_clear_error_before_training(rules, keywords, message):
    with pytest.raises(SettingsError, match=message):
        evaluate(rules, **{"task": tiny(), "lrs": [0.1], **keywords})


def test_a_count_of_seeds_means_that_many_seeds_from_seed():
    task = tiny()
    counted = evaluate("adam", task=task, lrs=[0.1], seeds=3)
    listed = evaluate("adam", task=task, lrs=[0.1], seeds=[0, 1, 2])
    assert counted.seeds == [0, 1, 2] and counted.reward == listed.reward and counted.sem == listed.sem
    assert evaluate("adam", task=task, lrs=[0.1], seed=5, seeds=2).seeds == [5, 6]
    one, plain = (evaluate("adam", task=task, lrs=[0.1], seed=4, **k).to_dict() for k in ({"seeds": 1}, {}))
    assert one | {"wall_time": 0} == plain | {"wall_time": 0}
