"""Ray backend: the same jobs on a local Ray instance or an existing cluster.

Without an address it starts a local instance sized to the machine (no dashboard, quiet, session files in a
temporary folder) and on close shuts it down and removes that folder; a reaper process does the same if this
process dies without closing (kill -9), so a local Ray never outlives its search. With an address it joins the cluster
(`ray start --head` on one machine, `ray start --address=HEAD:6379` on the others). A job whose worker process
dies is retried by Ray (`max_retries`); one that still fails reaches the driver as an exception and is recorded
as `failed`.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from optsearch.engine.reaper import descendants, start_reaper


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'optsearch[ray]'") from None
    return ray


CONNECT_TIMEOUT_S = 5.0
"""How long `check_address` waits for a cluster's head to answer. ray.init itself retries an unreachable address
for minutes (about 40 s per attempt, deaf to Ctrl-C meanwhile)."""


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ValueError within about `timeout` seconds unless a gRPC server answers at the Ray `address`: the head's
    port that ray.init would connect to (Ray resolves "auto" and, as ray.init does, 127.0.0.1 to this machine's
    address). A Ray Client address (ray://HOST:PORT) is probed as given."""
    ray = _ray()
    allowed = ("allowed: the HOST:PORT of a running Ray cluster's head (`ray start --head` prints it), or auto for "
               "one started on this machine")
    try:
        target = address.removeprefix("ray://") if address.startswith("ray://") else (
            ray._private.services.canonicalize_bootstrap_address(address))  # noqa: SLF001 - ray.init's own resolution
        host, port = ray._private.services.parse_address(target)  # noqa: SLF001
        port = int(port)
    except Exception:  # noqa: BLE001 - Ray's errors for a malformed or undetectable address vary
        raise ValueError(f"address: got {address!r}; {allowed}") from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout) as connection:
            reason = None if speaks_grpc(connection) else "something listens there, but not a gRPC (HTTP/2) server"
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else error.strerror or type(error).__name__
    if reason is not None:
        resolved = "" if target == address else f" (as {host}:{port})"
        raise ValueError(f"address: no Ray cluster answers at {address}{resolved}: {reason} (waited up to "
                         f"{timeout:g} s); {allowed}") from None


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""A client's HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113 §3.4): a Ray head's GCS and a Ray
Client server are gRPC servers, which answer with a SETTINGS frame of their own."""
SETTINGS_FRAME = 4


def speaks_grpc(connection: socket.socket) -> bool:
    """Whether the server on `connection` answers HTTP/2's preface with a SETTINGS frame (within the socket's
    timeout; a timeout raises TimeoutError). Another program on the port (a web server, a database) does not, and
    ray.init would hang on it."""
    connection.sendall(HTTP2_PREFACE)
    header = b""
    while len(header) < 9:  # a frame header: length (3 bytes), type, flags, stream (4)
        chunk = connection.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == SETTINGS_FRAME


def _call(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Runs on a Ray worker: one torch thread per CPU Ray gave this task."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    return fn(arg)


class RayExecutor:
    def __init__(self, workers: int | None = None, address: str | None = None, cpus_per_worker: int = 1,
                 gpus_per_worker: float = 0, max_retries: int = 2, temp_dir: str | None = None):
        ray = _ray()
        self.started = not ray.is_initialized()
        self.temp_dir, self.reaper = None, None
        if self.started:
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                                          configure_logging=True)
            if address:
                check_address(address)
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers * cpus_per_worker if workers else os.cpu_count()
                kwargs["_temp_dir"] = self.temp_dir = temp_dir or tempfile.mkdtemp(prefix="optsearch-ray-")
            before = descendants(os.getpid()).items()
            ray.init(**kwargs)
            if not address:  # Ray's processes, and its session files unless the folder was the caller's
                ours = dict(descendants(os.getpid()).items() - before)
                self.reaper = start_reaper(ours, None if temp_dir else self.temp_dir)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
        self.remote = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_retries=max_retries)(_call)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        return self.remote.remote(fn, arg).future()

    def close(self) -> None:
        if self.started:
            _ray().shutdown()
        if self.reaper is not None:  # removes the session files and anything the shutdown left
            self.reaper.stdin.close()
            self.reaper.wait()
