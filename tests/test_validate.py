"""Outside the torch.optim optimizers (which keep torch's wording), a refused input reads the same everywhere."""

import pytest

from optsearch.engine.executors import ProcessExecutor
from optsearch.strategies import PPO, Evolution, TokenSpace
from optsearch.tasks import Settings
from optsearch.tasks.registry import Task, TaskError


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PPO(update_every=0), "update_every: got 0; allowed: a whole number >= 1"),
    (lambda: PPO(baseline_decay=1.0), "baseline_decay: got 1.0; allowed: a number in [0, 1)"),
    (lambda: PPO(clip=0), "clip: got 0; allowed: a finite number > 0"),
    (lambda: PPO(epochs=0), "epochs: got 0; allowed: a whole number >= 1"),
    (lambda: Evolution(sample_size=65), "sample_size: got 65; allowed: a whole number from 1 to 64"),
    (lambda: Evolution(group_mutation_prob=2), "group_mutation_prob: got 2; allowed: a number in [0, 1]"),
    (lambda: TokenSpace(0), "groups: got 0; allowed: a whole number >= 1"),
    (lambda: ProcessExecutor(0), "workers: got 0; allowed: a whole number >= 1"),
    (lambda: Settings("digits", steps=0), "steps: got 0; allowed: a whole number >= 1"),
])
def test_a_refused_input_names_itself_the_value_and_what_is_allowed(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_a_task_and_settings_share_one_check_each_raising_its_own_error():
    with pytest.raises(TaskError, match=r"^batch_size: got 0; allowed: a whole number >= 1$"):
        Task("t", "", lambda _: None, lambda: None, steps=1, batch_size=0, epochs=1, benchmark_batch_size=1)
