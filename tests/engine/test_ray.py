"""A real local Ray instance (2 CPUs): same results as inline, and a worker that dies is retried."""

import os

import pytest

from optsearch.engine import Store, search
from optsearch.engine.executors import run_job

ray = pytest.importorskip("ray")
from optsearch.engine.ray_executor import RayExecutor  # noqa: E402

SETTINGS = dict(task="digits", strategy="random", budget=12, seed=4, steps=60, lrs=[1e-2, 1e-1], batch=6)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ex = RayExecutor(workers=2)
    yield ex
    ex.close()


def trials(db):
    with Store(db) as store:
        return sorted((t.fingerprint, t.rule, round(t.reward, 6), t.status) for t in store.trials())


def test_search_on_ray_stores_the_same_trials_as_inline(tmp_path, local_ray):
    search(db=tmp_path / "inline.sqlite", **SETTINGS)
    search(db=tmp_path / "ray.sqlite", executor=local_ray, **SETTINGS)
    assert trials(tmp_path / "ray.sqlite") == trials(tmp_path / "inline.sqlite")


def die_once_then_run(arg):
    """Kill this worker process the first time it is called (marker file), then run the job normally."""
    marker, job = arg
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return run_job(job)


class DyingWorkers:
    """Wraps the Ray executor so that the second job's worker process dies mid-evaluation once."""

    def __init__(self, ex, marker):
        self.ex, self.marker, self.workers, self.jobs = ex, marker, ex.workers, 0

    def submit(self, fn, arg):
        self.jobs += 1
        if self.jobs == 2:
            return self.ex.submit(die_once_then_run, (self.marker, arg))
        return self.ex.submit(fn, arg)

    def close(self):
        pass


def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, local_ray):
    marker = str(tmp_path / "died")
    search(db=tmp_path / "inline.sqlite", **SETTINGS)
    search(db=tmp_path / "ray.sqlite", executor=DyingWorkers(local_ray, marker), **SETTINGS)
    assert os.path.exists(marker), "the worker was never killed"
    got = trials(tmp_path / "ray.sqlite")
    assert got == trials(tmp_path / "inline.sqlite")
    assert len({fp for fp, *_ in got}) == len(got)
    assert all(status != "failed" for *_, status in got)
