"""Checks that processes are gone: polled with a deadline, never a fixed sleep."""

import os
import signal
import time

import pytest

from optsearch.engine.reaper import alive, cmdline


@pytest.fixture
def survivors():
    """Returns survivors(pids, timeout): poll until every process of `pids` (pid -> start time) has exited; the
    command lines of those still alive at the deadline, which are then killed (a failing test leaves nothing)."""

    def check(pids: dict[int, int], timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            running = [pid for pid, start in pids.items() if alive(pid, start)]
            if not running or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        lines = [f"{pid}: {cmdline(pid)}" for pid in running]
        for pid in running:
            os.kill(pid, signal.SIGKILL)
        return lines

    return check
