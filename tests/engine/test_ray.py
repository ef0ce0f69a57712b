"""A real local Ray instance (2 CPUs): same results as inline, and a worker that dies is retried."""

import os
import signal
import subprocess
import sys
import time

import pytest

from optsearch.engine import Store, search
from optsearch.engine.executors import run_job

ray = pytest.importorskip("ray")
from optsearch.engine.ray_executor import RayExecutor  # noqa: E402

# PPO updating every 4 rules: the asks depend on the tells, so any scheduling race would change the trials.
SETTINGS = dict(task="digits", strategy="ppo", update_every=4, hidden=32, budget=16, seed=4, steps=60,
                lrs=[1e-2, 1e-1], batch=4)


@pytest.fixture(scope="module")
def local_ray():
    ex = RayExecutor(workers=2)
    assert ex.workers == 2 and os.path.isdir(ex.temp_dir)
    yield ex
    ex.close()
    assert not os.path.exists(ex.temp_dir), "Ray's session files were left behind"


def test_without_ray_installed_the_error_says_how_to_get_it(monkeypatch):
    import sys

    from optsearch.engine import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'optsearch\[ray\]'"):
        make_executor("ray", 2)


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


def test_ctrl_c_stops_a_ray_search_cleanly(tmp_path, wait_for_trials):
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "optsearch.cli", "search", "--task", "digits", "--strategy",
                             "random", "--budget", "100000", "--steps", "30", "--lrs", "0.1", "--batch", "4",
                             "--executor", "ray", "--workers", "2", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_trials(db, 4)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground process group
        out, err = proc.communicate(timeout=120)
    finally:  # a search the signal failed to stop must not outlive the test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopped: interrupted" in out
    with Store(db) as store:
        assert 4 <= store.count_trials() < 100000


def test_a_killed_driver_leaves_no_ray_process_and_no_session_files(survivors):
    """kill -9 of the process that started a local Ray: Ray's processes and its temp folder are gone soon."""
    from optsearch.engine.reaper import cmdline, descendants

    code = ("from optsearch.engine.ray_executor import RayExecutor\n"
            "ex = RayExecutor(workers=2)\n"
            "print(ex.submit(abs, -1).result(), ex.temp_dir, flush=True)\n"
            "import time; time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ready, temp_dir = proc.stdout.readline().split()
        assert ready == "1" and os.path.isdir(temp_dir)
        pids = descendants(proc.pid)
        lines = [cmdline(pid) for pid in pids]
        assert any("raylet" in line for line in lines) and any("Agent" in line for line in lines), lines
    finally:
        proc.kill()
        proc.communicate()
    assert survivors(pids) == []
    deadline = time.monotonic() + 20
    while os.path.exists(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(temp_dir), "Ray's session files were left behind"


def test_a_running_ray_heads_address_passes_the_address_check(local_ray):
    """check_address speaks to the head's GCS (a gRPC server) the way ray.init would reach it."""
    from optsearch.engine.ray_executor import check_address

    check_address(ray.get_runtime_context().gcs_address)
