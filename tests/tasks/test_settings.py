import math
import pickle

import pytest

from optsearch.tasks import Settings, SettingsError


@pytest.mark.parametrize(("changes", "message"), [
    (dict(task="mnist1"), "task: unknown task 'mnist1'"),
    (dict(steps=0), "steps: got 0; allowed: a whole number >= 1"),
    (dict(steps=-5), "steps: got -5"),
    (dict(steps=2.5), "steps: got 2.5"),
    (dict(batch_size=0), "batch_size: got 0"),
    (dict(lrs=(math.nan,)), "lrs: got"),
    (dict(lrs=(1e-3, math.inf)), "lrs: got"),
    (dict(lrs=()), "lrs: got"),
    (dict(lrs=(-0.1,)), "lrs: got"),
    (dict(lrs="0.1"), "lrs: got"),
    (dict(seed=-1), "seed: got -1; allowed: a whole number from 0"),
    (dict(seed=True), "seed: got True"),
    (dict(device="cdua"), "device: got 'cdua'; allowed: cpu, cuda, cuda:N, mps"),
    (dict(device="meta"), "device: got 'meta'"),
    (dict(precision="fp8"), "precision: got 'fp8'; allowed: auto, bf16, fp32"),
])
def test_every_bad_setting_is_refused_when_built_naming_the_setting(changes, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(**changes)


def test_settings_normalize_and_resolve_the_task_budget():
    s = Settings(task="digits", lrs=[1, 0.1, 1.0], device="cpu")
    assert s.lrs == (1.0, 0.1) and all(isinstance(lr, float) for lr in s.lrs)
    resolved = s.resolved()
    assert (resolved.steps, resolved.batch_size) == (300, 64) and s.steps is None
    assert Settings(task="digits", steps=7).resolved().steps == 7


def test_settings_round_trip_through_json_and_pickle():
    s = Settings(task="digits", lrs=(0.01, 0.1), steps=5, batch_size=8, seed=3, data_dir="/tmp/x", precision="fp32")
    assert Settings.from_json(s.to_json()) == s
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.from_json({**s.to_json(), "stpes": 3})


def test_a_missing_gpu_is_named_where_training_would_run():
    s = Settings(device="cuda:0")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_gpu = False
    if has_gpu:
        s.check_device()
    else:
        with pytest.raises(SettingsError, match="no CUDA GPU is visible"):
            s.check_device()
