"""Ends what a local Ray instance leaves behind once the process that started it is gone, however it went.

Ray fate-shares its GCS, raylet and workers with the driver (PR_SET_PDEATHSIG), but after a kill -9 of the driver
its dashboard and runtime-env agents linger ~60 s (retrying the dead GCS) and its session folder stays forever.
So the driver starts this script (stdlib only: it starts in milliseconds) with the processes `ray.init` started
and the session folder, and keeps the only write end of its stdin: EOF means the driver closed it or died.
The reaper then kills those processes still alive (the same start time: never a reused pid) and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def descendants(pid: int) -> dict[int, int]:
    """Every live process below `pid`: pid -> start time (clock ticks after boot). Empty where there is no /proc."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))} \
        if os.path.isdir("/proc") else {}
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start) in stats.items():
            if ppid == parent:
                found[child] = start
                todo.append(child)
    return found


def alive(pid: int, start: int) -> bool:
    """Whether process `pid` started at `start` still runs (a zombie does not)."""
    stat = _stat(pid)
    return stat is not None and stat[1] == start


def cmdline(pid: int) -> str:
    """A process's command line ('' once it is gone): for messages about it."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[19]))


def start_reaper(processes: dict[int, int], folder: str | None) -> subprocess.Popen:
    """Start the reaper of `processes` (pid -> start time) and `folder`; closing its stdin sets it off."""
    args = [f"{pid}:{start}" for pid, start in processes.items()]
    return subprocess.Popen([sys.executable, "-I", __file__, folder or "", *args], stdin=subprocess.PIPE,
                            start_new_session=True)  # no Ctrl-C of the terminal's process group reaches it


def main(argv: list[str]) -> None:
    folder, *processes = argv
    sys.stdin.buffer.read()  # returns at EOF: the driver closed the pipe or died
    for item in processes:
        pid, start = (int(x) for x in item.split(":"))
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
