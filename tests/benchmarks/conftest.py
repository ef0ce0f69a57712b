"""Benchmark scripts run as a user runs them: a subprocess on this checkout's sources."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture
def run_benchmark() -> Callable[..., subprocess.CompletedProcess]:
    """run_benchmark("grid_luck.py", *args): the script's exit status and output."""
    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                              text=True, timeout=300, env=env)
    return run
