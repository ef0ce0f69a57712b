"""A search killed outright leaves no process behind; SIGTERM stops it like Ctrl-C (exit 143, trials kept).

Real `optsearch search --executor process --workers 2` subprocesses; the descendants are read from /proc.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from optsearch.engine.reaper import cmdline, descendants
from optsearch.engine.store import Store, StoreError

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")

SEARCH = ["search", "--task", "digits", "--strategy", "random", "--budget", "100000", "--steps", "30", "--lrs", "0.1",
          "--batch", "4", "--executor", "process", "--workers", "2"]


def stored_trials(db: Path, evaluated_only: bool = False) -> int:
    """Trials in the db so far (read-only: the search holds the writer's lock)."""
    try:
        with Store(db, readonly=True) as store:
            return store.count_trials(evaluated_only)
    except StoreError:  # the search has not created its tables yet
        return 0


def start_search(db: Path, past_baselines: bool = False) -> tuple[subprocess.Popen, dict[int, int]]:
    """A search mid-way: both pool workers have run jobs and a first trial (a searched one if `past_baselines`)
    is stored. Returns it and its descendants (the workers and multiprocessing's resource tracker)."""
    proc = subprocess.Popen([sys.executable, "-m", "optsearch.cli", *SEARCH, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while stored_trials(db, past_baselines) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        pids = descendants(proc.pid)
        lines = [cmdline(pid) for pid in pids]
        assert sum("spawn_main" in line for line in lines) == 2, lines
        assert any("resource_tracker" in line for line in lines), lines
    except BaseException:
        proc.terminate()  # a clean stop: this test must not itself leave a search behind
        proc.communicate()
        raise
    return proc, pids


def test_sigkill_of_a_search_leaves_no_worker_or_resource_tracker(tmp_path, survivors):
    proc, pids = start_search(tmp_path / "s.sqlite")
    proc.kill()
    proc.communicate(timeout=10)
    assert survivors(pids) == []


def test_sigterm_stops_a_search_like_ctrl_c_with_exit_code_143(tmp_path, survivors):
    db = tmp_path / "s.sqlite"
    proc, pids = start_search(db, past_baselines=True)
    finished = stored_trials(db)
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped: interrupted" in out
    assert survivors(pids) == []
    with Store(db) as store:  # the lock died with the search: the db opens for writing again
        assert finished <= store.count_trials(evaluated_only=False) and store.count_trials() < 100000
