"""A Ray address nothing answers at is one line and exit 2 within seconds, before anything is written (before:
ray.init retried it for minutes, deaf to Ctrl-C for ~40 s at a time, and the funnel had written its plan first)."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import optsearch
from optsearch.engine import search
from optsearch.tasks import SettingsError

ray = pytest.importorskip("ray")
from optsearch.engine.ray_executor import CONNECT_TIMEOUT_S, check_address  # noqa: E402

SRC = str(Path(optsearch.__file__).parents[1])
# Loopback only: Ray swaps 127.0.0.1 for this machine's network address unless told this is not a multi-machine setup.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture
def loopback(monkeypatch):
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def written(folder: Path) -> dict[str, bytes]:
    """The files in `folder` and their bytes, but for SQLite's shared-memory index and an empty write-ahead log (a
    read-only open of the db, to read the funnel's plan, may leave them)."""
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


@pytest.mark.parametrize("command", ["search", "funnel"])
def test_an_unreachable_address_is_one_line_exit_2_within_seconds_and_writes_nothing(tmp_path, command):
    db = tmp_path / "s.sqlite"
    if command == "funnel":
        search(task="digits", strategy="random", budget=6, steps=30, lrs=[1e-2, 1e-1], db=db, seed=0)
    before = written(tmp_path)
    args = (["search", "--task", "digits", "--budget", "2", "--db", str(db)] if command == "search" else
            ["funnel", str(db), "--top", "3", "--seeds", "2", "--finalists", "2", "--tasks", "digits"])
    address = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "optsearch.cli", *args, "--executor", "ray", "--address", address],
                          env={**os.environ, **LOOPBACK, "PYTHONPATH": SRC}, capture_output=True, text=True,
                          timeout=180)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (f"optsearch: error: address: no Ray cluster answers at {address}: Connection refused "
                           f"(waited up to {CONNECT_TIMEOUT_S:g} s); allowed: the HOST:PORT of a running Ray "
                           "cluster's head (`ray start --head` prints it), or auto for one started on this machine\n")
    assert elapsed < 90  # Python, torch and Ray starting on a busy 2-core machine (measured ~16 s); ray.init: minutes
    assert written(tmp_path) == before


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"", None])
def test_a_port_where_another_program_answers_is_refused_not_hung_on(loopback, reply):
    """A web server, a closed connection, a server that never answers: ray.init would hang on each (before: the
    check passed as soon as the port accepted)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                if reply is not None:
                    connection.sendall(reply)
                    return
                connection.recv(1024)  # silent until the client gives up

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        why = "timed out" if reply is None else "something listens there, but not a gRPC \\(HTTP/2\\) server"
        with pytest.raises(ValueError, match=f"no Ray cluster answers at {address}: {why} \\(waited up to 1 s\\)"):
            check_address(address, timeout=1)
        thread.join(timeout=10)


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:port", ""])
def test_a_malformed_address_is_named(loopback, address):
    with pytest.raises(ValueError, match=f"address: got '{address}'; allowed: the HOST:PORT of a running Ray"):
        check_address(address)


def test_an_address_without_the_ray_executor_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="address: got '127.0.0.1:6379' for the process executor; allowed: an "
                                            "address only with executor ray"):
        search(task="digits", executor="process", address="127.0.0.1:6379", db=tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()
