"""What evaluating a rule costs on each task family, measured side by side in one run.

Per task: a training step per member (forward, backward and Adam written as a rule, the trainers' update code) in
fp32 and under bfloat16 autocast, in ms; the step's model FLOPs (torch.utils.flop_counter) per second against this
core's matmul peak (a large fp32 and a large bf16 matmul, timed here); `evaluate` at full fidelity with the task's
own precision ("auto") and checkpoint validation against a naive fp32 torch loop doing the same members, steps and
validations (an nn.Module and a RuleOptimizer per member, the full validation split at every checkpoint); and the
share of `evaluate`'s time spent validating. For a stacked task (an MLP), `evaluate` against a bare stacked loop of
the same shapes too (StackedMLP forward and backward, cross-entropy, an SGD update; the same minibatches).
Times are CPU seconds of this process, so other work on a shared machine does not count.

The members are `--rules` × `--lrs` at each task's own budget (`--steps` overrides it). Members of a sequential task
train one after another, so its ratios hold per member: by default it gets 2 learning rates (8 × 2 members), a
stacked task the paper's 6 (stacking's gain depends on the member count).

    python benchmarks/family_costs.py [--tasks a,b] [--steps N] [--rules sgd adam] [--lrs 1e-3,1e-2] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from optsearch.optim import RuleOptimizer, compute_update, compute_updates, init_state, zoo
from optsearch.optim.zoo import resolve
from optsearch.tasks import DatasetMissing, evaluate, get_task
from optsearch.tasks import population as stacked_trainer
from optsearch.tasks.metrics import measure
from optsearch.tasks.models import StackedMLP, seeded
from optsearch.tasks.population import curve_steps, minibatches, stable_seed
from optsearch.tasks.precision import autocast, fast_bf16, images_last, model_last
from optsearch.tasks.registry import TaskError, load_splits
from optsearch.tasks.settings import PAPER_LRS

TASKS = ("mnist1d_large", "fashion_tiny_conv", "kjv_tiny_lstm", "kjv_transformer")
RULES = ("sgd", "adam", "rmsprop", "powersign", "addsign", "nos3", "nos5", "nos12")
SEQUENTIAL_LRS = (1e-3, 1e-2)
SEED = 0
CPU = torch.device("cpu")


def cpu_seconds(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.process_time()
    fn(*args, **kwargs)
    return time.process_time() - start


def per_call(fn: Callable[[], object], budget_s: float, max_calls: int) -> float:
    """CPU seconds per call of `fn` after one warm-up call: at least 2 calls, then until `budget_s` or `max_calls`."""
    fn()
    calls, spent = 0, 0.0
    while calls < 2 or (spent < budget_s and calls < max_calls):
        spent += cpu_seconds(fn)
        calls += 1
    return spent / calls


def matmul_peak(dtype: torch.dtype, n: int, budget_s: float) -> float:
    """GFLOP/s of an n×n matmul in `dtype` on this process's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / per_call(lambda: a @ b, budget_s, 1000) / 1e9


@dataclass
class StepCost:
    ms: float  # CPU ms per member-step
    gflops: float  # model FLOPs of a member-step per second, in GFLOP/s


def step_cost(task: str, members: int, bf16: bool, budget_s: float, max_steps: int) -> StepCost:
    """One member's training step (forward, backward, Adam as a rule) in the task's trainer's layout: a stacked
    task steps all `members` at once (the cost is per member), any other task one model."""
    spec, data = get_task(task), load_splits(task)
    batches = minibatches(len(data.y_train), spec.batch_size, 10**9, SEED, CPU)
    rule = zoo["adam"].rule
    if spec.stacked:
        model = StackedMLP(spec.model.sizes, members, torch.Generator().manual_seed(SEED))
        state = init_state(rule, model.params)
        counter = iter(range(1, 10**9))

        def step() -> None:
            index = next(batches)
            with autocast(CPU, bf16):
                logits = model(data.x_train[index])
            y = data.y_train[index].repeat(members)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y, reduction="none").view(members, -1).mean(1)
            model.params.grad = None
            loss.sum().backward()
            with torch.no_grad():
                model.params.sub_(1e-3 * compute_update(rule, model.params.grad, model.params, state, next(counter)))
    else:
        net = model_last(seeded(spec.model, SEED))
        params = list(net.parameters())
        states = [init_state(rule, p) for p in params]
        counter = iter(range(1, 10**9))

        def step() -> None:
            index = next(batches)
            with autocast(CPU, bf16):
                output = net(images_last(data.x_train[index]))
            grads = torch.autograd.grad(spec.scoring.loss(output, data.y_train[index]), params)
            with torch.no_grad():
                n = next(counter)
                torch._foreach_add_(params, compute_updates(rule, grads, params, states, [n] * len(params)),
                                    alpha=-1e-3)
    share = members if spec.stacked else 1
    seconds = per_call(step, budget_s, max_steps) / share
    with FlopCounterMode(display=False) as flops:
        step()
    return StepCost(seconds * 1e3, flops.get_total_flops() / share / seconds / 1e9)


@contextmanager
def validation_clock() -> Iterator[list[float]]:
    """CPU seconds spent in the trainers' validation functions while the block runs (they are wrapped, then
    restored): the stacked trainer's `_stacked_accuracy`, and `measure` where the sequential trainer calls it."""
    import importlib

    modules = [stacked_trainer]
    try:
        modules.append(importlib.import_module("optsearch.tasks.sequential"))
    except ModuleNotFoundError:  # the sequential trainer still lives beside the stacked one
        pass
    total = [0.0]
    patched = []
    for module in modules:
        for name in ("_stacked_accuracy", "measure"):
            original = getattr(module, name, None)
            if original is None:
                continue

            def timed(*args, original=original, **kwargs):
                start = time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    total[0] += time.process_time() - start

            setattr(module, name, timed)
            patched.append((module, name, original))
    try:
        yield total
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


def naive(task: str, rules: Sequence[str], lrs: Sequence[float], steps: int) -> None:
    """Every member as a plain fp32 nn.Module with a RuleOptimizer, the full validation split at every checkpoint;
    a member whose loss goes non-finite stops, as in the trainers."""
    spec, data = get_task(task), load_splits(task)
    checkpoints = curve_steps(steps)
    for name in rules:
        for lr in lrs:
            model = seeded(spec.model, stable_seed("init", SEED))
            optimizer = RuleOptimizer(model.parameters(), resolve(name), lr=lr, total_steps=steps, seed=SEED)
            for step, index in enumerate(minibatches(len(data.y_train), spec.batch_size, steps, SEED, CPU), 1):
                loss = spec.scoring.loss(model(data.x_train[index]), data.y_train[index])
                if not torch.isfinite(loss):
                    break
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if step in checkpoints:
                    measure(model, data.x_val, data.y_val, spec.scoring, False)
            measure(model, data.x_test, data.y_test, spec.scoring, False)


def bare_stacked(task: str, members: int, steps: int) -> None:
    """The stacked model's own work: forward, cross-entropy, backward and an SGD update, on the same minibatches."""
    spec, data = get_task(task), load_splits(task)
    model = StackedMLP(spec.model.sizes, members, torch.Generator().manual_seed(stable_seed("init", SEED)))
    lr = torch.full((members, 1), 1e-2)
    for index in minibatches(len(data.y_train), spec.batch_size, steps, SEED, CPU):
        logits = model(data.x_train[index])
        loss = F.cross_entropy(logits.flatten(0, 1), data.y_train[index].repeat(members), reduction="none")
        model.params.grad = None
        loss.view(members, -1).mean(1).sum().backward()
        with torch.no_grad():
            model.params.addcmul_(lr, model.params.grad, value=-1.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated (default {','.join(TASKS)})")
    parser.add_argument("--steps", type=int, help="training steps per member (default: each task's own budget)")
    parser.add_argument("--rules", nargs="+", help=f"zoo names or rule texts (default {' '.join(RULES)}); a rule "
                                                   "text may hold commas, e.g. 'clip(m, 1e-3)'")
    parser.add_argument("--lrs", help="comma-separated learning rates (default: the paper's 6 for a stacked task, "
                                      f"{','.join(map(str, SEQUENTIAL_LRS))} for any other)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 20 steps, 2 rules × 1 lr, short timings")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rules, args.lrs = args.steps or 20, args.rules or ["sgd", "adam"], args.lrs or "1e-2"
    rules = [r.strip() for r in (args.rules or RULES) if r.strip()]
    try:  # bad input fails here, before anything is timed
        for rule in rules:
            resolve(rule)
    except ValueError as error:
        parser.error(f"--rules: {error}")
    try:
        lrs = None if args.lrs is None else [float(x) for x in args.lrs.split(",")]
    except ValueError as error:
        parser.error(f"--lrs: {error}")
    if not rules or lrs is not None and not all(lr > 0 for lr in lrs):
        parser.error(f"--rules {args.rules!r} --lrs {args.lrs!r}: allowed: at least one rule, positive learning rates")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps: got {args.steps}; allowed: a whole number >= 1")
    torch.set_num_threads(args.threads)
    budget, max_steps = (0.2, 3) if args.quick else (2.0, 50)

    peak32 = matmul_peak(torch.float32, 256 if args.quick else 1024, budget)
    peak16 = matmul_peak(torch.bfloat16, 128 if args.quick else 512, budget)
    print(f"torch {torch.__version__}, {args.threads} thread(s); matmul peak fp32 {peak32:.1f} GFLOP/s, "
          f"bf16 {peak16:.1f} GFLOP/s; CPU times")
    if not fast_bf16(CPU):  # emulated bf16: its matmul peak is no bound for a step that runs partly in fp32
        print("no native bf16 on this CPU: bf16 is emulated (slow), so precision auto trains fp32 here and the bf16 "
              "'% of peak' below can exceed 100%")
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        try:
            spec = get_task(task)
            load_splits(task)
        except (TaskError, DatasetMissing) as missing:
            print(f"{task}: skipped ({missing})")
            continue
        steps = args.steps or spec.steps
        task_lrs = lrs or (PAPER_LRS if spec.stacked else SEQUENTIAL_LRS)
        members = len(rules) * len(task_lrs)
        costs = []
        for bf16, peak in ((False, peak32), (True, peak16)):
            try:
                cost = step_cost(task, members, bf16, budget, max_steps)
                costs.append(f"{cost.ms:.3f} ms ({cost.gflops:.1f} GFLOP/s, {cost.gflops / peak:.0%} of peak)")
            except RuntimeError as error:  # e.g. oneDNN has no bf16 LSTM on CPUs without native bf16
                costs.append(f"not run here ({str(error).splitlines()[0][:80]})")
        evaluate(rules[:1], task=task, lrs=task_lrs[:1], steps=2, seed=SEED)  # warm the kernels
        with validation_clock() as validating:
            evaluated = cpu_seconds(evaluate, rules, task=task, lrs=task_lrs, steps=steps, seed=SEED)
        baseline = cpu_seconds(naive, task, rules, task_lrs, steps)
        print(f"{task}: {len(rules)} rules × {len(task_lrs)} lrs = {members} members × {steps} steps of batch "
              f"{spec.batch_size}")
        print(f"  training step per member: fp32 {costs[0]}, bf16 {costs[1]}")
        print(f"  evaluate {evaluated:.1f} s (validation {validating[0] / evaluated:.0%}), naive fp32 loop "
              f"{baseline:.1f} s: {baseline / evaluated:.2f}× faster")
        if spec.stacked:
            bare = cpu_seconds(bare_stacked, task, members, steps)
            print(f"  bare stacked loop {bare:.1f} s: evaluate takes {evaluated / bare:.2f}× its time")


if __name__ == "__main__":
    main()
