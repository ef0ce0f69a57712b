"""Step time and state memory of PowerSign, AddSign and RuleOptimizer against torch.optim.Adam(foreach=True).

Each (optimizer, model) pair is measured in a fresh forked process: on CPUs a step's cost depends heavily on
the allocator's state (freed temporaries returned to the system are page-faulted back in on the next step), so
optimizers sharing one process would bill each other for their temporaries. The pairs run interleaved,
`--repeats` times; a pair's time is the median over repeats of the median step after a warm-up. Times are
CPU times of the process (page faults included), so that other work on a shared machine does not count.
Gradients are fixed random tensors: only `optimizer.step()` is timed.

    python benchmarks/optimizer_step.py [--threads 1] [--steps 10] [--repeats 3]

To see the costs without page faults (glibc keeping freed memory), prefix it with
MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_MMAP_THRESHOLD_=4000000000.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from optsearch.optim import AddSign, PowerSign, RuleOptimizer

BASELINE = "torch Adam(foreach=True)"
OPTIMIZERS: dict[str, Callable] = {
    BASELINE: lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
    "torch Adam(foreach=False)": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False),
    "PowerSign": lambda ps: PowerSign(ps, lr=1e-3),
    "PowerSign(foreach=True)": lambda ps: PowerSign(ps, lr=1e-3, foreach=True),
    "AddSign": lambda ps: AddSign(ps, lr=1e-3),
    'RuleOptimizer("adam")': lambda ps: RuleOptimizer(ps, "adam", lr=1e-3),
    'RuleOptimizer("adam", foreach=True)': lambda ps: RuleOptimizer(ps, "adam", lr=1e-3, foreach=True),
    'RuleOptimizer("adam", weight_decay=0.01)': lambda ps: RuleOptimizer(ps, "adam", lr=1e-3, weight_decay=0.01),
    'RuleOptimizer("g * exp(sign(g) * sign(m))")': lambda ps: RuleOptimizer(ps, "g * exp(sign(g) * sign(m))"),
}
TARGETS = {"PowerSign": "time <= 1.0, state = 0.5", 'RuleOptimizer("adam")': "time <= 1.3"}

MODELS: dict[str, Callable[[], nn.Module]] = {
    "4 x Linear(1600, 1600): 10.2M params in 8 tensors":
        lambda: nn.Sequential(*(nn.Linear(1600, 1600) for _ in range(4))),
    "64 x Linear(400, 400): 10.3M params in 128 tensors":
        lambda: nn.Sequential(*(nn.Linear(400, 400) for _ in range(64))),
}


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor))


def measure(optimizer: str, model: str, steps: int, warmup: int) -> tuple[float, int]:
    """Median CPU time (s) of a step and state size (bytes) of one optimizer on one model."""
    torch.manual_seed(0)
    net = MODELS[model]()
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opt = OPTIMIZERS[optimizer](net.parameters())
    times = []
    for i in range(warmup + steps):
        start = time.process_time()
        opt.step()
        if i >= warmup:
            times.append(time.process_time() - start)
    return statistics.median(times), state_bytes(opt)


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a fresh forked process."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=lambda: send.send(fn(*args)))
    proc.start()
    result = receive.recv()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pair (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); median over {args.repeats} fresh processes "
          f"of the median of {args.steps} steps after {args.warmup}")
    pairs = [(o, m) for m in MODELS for o in OPTIMIZERS]
    runs: dict[tuple[str, str], list[tuple[float, int]]] = {pair: [] for pair in pairs}
    for _ in range(args.repeats):
        for pair in pairs:
            runs[pair].append(isolated(measure, *pair, args.steps, args.warmup))
    for model in MODELS:
        base_time = statistics.median(t for t, _ in runs[BASELINE, model])
        base_bytes = runs[BASELINE, model][0][1]
        print(f"\n{model}")
        print(f"  {'optimizer':45s} {'CPU ms':>8s} {'x Adam':>7s} {'state MiB':>10s} {'x Adam':>7s}  target")
        for optimizer in OPTIMIZERS:
            seconds = statistics.median(t for t, _ in runs[optimizer, model])
            nbytes = runs[optimizer, model][0][1]
            print(f"  {optimizer:45s} {seconds * 1e3:8.2f} {seconds / base_time:7.2f} {nbytes / 2**20:10.2f} "
                  f"{nbytes / base_bytes:7.4f}  {TARGETS.get(optimizer, '')}")


if __name__ == "__main__":
    main()
