"""Throughput of `evaluate`'s batched population against the naive way, measured side by side in one run.

The work: 8 rules × 6 learning rates × `--steps` steps of batch 128 on mnist1d. `evaluate` trains all 48 members
as one stacked MLP; the naive way trains 48 nn.Module MLPs one after another, each with its own RuleOptimizer, on
the same minibatches from the same initial weights. Also printed: how a batched step splits into forward+backward
and the optimizer update, and Fashion-MNIST ConvNet training images/second in fp32 against bf16 (channels-last
both, as the trainers run it).

    python benchmarks/evaluate_throughput.py [--steps 1000] [--threads 1] [--conv-steps 30]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from optsearch.optim import RuleOptimizer, compute_update, init_state, zoo
from optsearch.tasks import DatasetMissing, evaluate, get_task
from optsearch.tasks.models import StackedMLP
from optsearch.tasks.population import minibatches, rule_generator, stable_seed
from optsearch.tasks.precision import autocast, fast_bf16, images_last, model_last
from optsearch.tasks.registry import load_splits
from optsearch.tasks.settings import PAPER_LRS

RULES = ("sgd", "adam", "rmsprop", "powersign", "addsign", "nos3", "nos5", "nos12")
BATCH = 128
SEED = 0


class Clock:
    """Wall and CPU seconds of a block: on a shared machine wall time also counts waiting for a core."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def batched(steps: int, precision: str) -> tuple[Clock, list[float]]:
    """Time of one `evaluate` call over all members, and each member's final validation accuracy."""
    evaluate(list(RULES), steps=2, batch_size=BATCH, precision=precision)  # load the data, warm the kernels
    with Clock() as clock:
        evaluations = evaluate(list(RULES), steps=steps, batch_size=BATCH, seed=SEED, precision=precision)
    return clock, [p.val_acc for ev in evaluations for p in ev.per_lr]


def naive(steps: int) -> tuple[Clock, list[float]]:
    """Time of training the members one by one as nn.Modules with RuleOptimizer, and their final val acc."""
    data = load_splits("mnist1d")
    init = StackedMLP(get_task("mnist1d").model.sizes, 1, torch.Generator().manual_seed(stable_seed("init", SEED)))
    accuracies = []
    with Clock() as clock:
        for name in RULES:
            for lr in PAPER_LRS:
                model = init.module(0)
                optimizer = RuleOptimizer(model.parameters(), zoo[name].rule, lr=lr, total_steps=steps, seed=SEED)
                for index in minibatches(len(data.y_train), BATCH, steps, SEED, "cpu"):
                    loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    accuracies.append((model(data.x_val).argmax(1) == data.y_val).double().mean().item())
    return clock, accuracies


def step_shares(steps: int) -> tuple[float, float]:
    """Mean seconds per batched step spent in forward+backward and in the 8 rules' updates (the trainer's loop)."""
    data = load_splits("mnist1d")
    rules = [zoo[name].rule for name in RULES]
    k = len(PAPER_LRS)
    model = StackedMLP(get_task("mnist1d").model.sizes, k * len(rules), torch.Generator().manual_seed(0))
    params = model.params
    lr = torch.tensor(PAPER_LRS * len(rules)).view(-1, 1)
    blocks = [slice(k * r, k * (r + 1)) for r in range(len(rules))]
    states = [init_state(rule, params[b]) for rule, b in zip(rules, blocks, strict=True)]
    generators = [rule_generator(rule, "cpu", SEED) for rule in rules]
    forward_backward = update = 0.0
    for step, index in enumerate(minibatches(len(data.y_train), BATCH, steps, SEED, "cpu"), 1):
        t0 = time.perf_counter()
        x, y = data.x_train[index], data.y_train[index]
        losses = F.cross_entropy(model(x).transpose(1, 2), y.expand(len(params), -1), reduction="none").mean(1)
        params.grad = None
        losses.sum().backward()
        t1 = time.perf_counter()
        with torch.no_grad():
            for rule, b, state, generator in zip(rules, blocks, states, generators, strict=True):
                delta = compute_update(rule, params.grad[b], params[b], state, step, steps, generator)
                params[b] = params[b] - lr[b] * delta
        t2 = time.perf_counter()
        forward_backward, update = forward_backward + t1 - t0, update + t2 - t1
    return forward_backward / steps, update / steps


def conv_images_per_second(bf16: bool, steps: int, batch: int = 100) -> float:
    """Fashion-MNIST ConvNet training throughput with Adam written as a rule (the trainer's update code)."""
    data = load_splits("fashion_mnist_conv")
    model = model_last(get_task("fashion_mnist_conv").model())
    params = list(model.parameters())
    rule = zoo["adam"].rule
    states = [init_state(rule, p) for p in params]
    warmup = 3
    for step, index in enumerate(minibatches(len(data.y_train), batch, steps + warmup, SEED, "cpu"), 1):
        if step == warmup + 1:
            start = time.perf_counter()
        with autocast(torch.device("cpu"), bf16):
            logits = model(images_last(data.x_train[index]))
        loss = F.cross_entropy(logits.float(), data.y_train[index])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, s in zip(params, grads, states, strict=True):
                p.sub_(1e-3 * compute_update(rule, g, p, s, step))
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per member (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--conv-steps", type=int, default=30, help="timed ConvNet steps per precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    members = len(RULES) * len(PAPER_LRS)
    print(f"mnist1d: {len(RULES)} rules × {len(PAPER_LRS)} lrs = {members} members × {args.steps} steps of batch "
          f"{BATCH}; torch {torch.__version__}, {args.threads} thread(s)")

    batched_time, batched_acc = batched(args.steps, "fp32")
    auto_time, auto_acc = batched(args.steps, "auto")
    naive_time, naive_acc = naive(args.steps)
    work = members * args.steps
    for name, c in (("evaluate, stacked, fp32", batched_time),
                    (f"evaluate, stacked, auto ({'bf16' if fast_bf16('cpu') else 'fp32'})", auto_time),
                    ("naive, 48 nn.Modules + RuleOptimizer", naive_time)):
        print(f"  {name:38s} {work / c.wall:6.0f} member·steps/s ({c.wall:.1f} s wall), "
              f"{work / c.cpu:6.0f} per CPU-second ({c.cpu:.1f} s CPU)")
    for name, c in (("fp32", batched_time), ("auto", auto_time)):
        print(f"  speed-up over naive, {name}: {naive_time.wall / c.wall:.2f}× wall, {naive_time.cpu / c.cpu:.2f}× CPU "
              f"(target ≥ 4×)")
    for name, acc in (("fp32", batched_acc), ("auto", auto_acc)):
        gap = sum(abs(a - b) for a, b in zip(acc, naive_acc, strict=True)) / members
        print(f"  same work, {name}: mean |val acc difference| per member against naive fp32 {gap:.4f}")

    forward_backward, update = step_shares(min(args.steps, 200))
    total = forward_backward + update
    print(f"  a batched step: forward+backward {forward_backward * 1e3:.2f} ms ({forward_backward / total:.0%}), "
          f"update of 8 rules {update * 1e3:.2f} ms ({update / total:.0%}) (target: update ≤ forward+backward)")

    try:
        fp32 = conv_images_per_second(False, args.conv_steps)
        bf16 = conv_images_per_second(True, args.conv_steps)
    except DatasetMissing as missing:
        print(f"fashion_mnist_conv: skipped ({missing})")
        return
    print(f"fashion_mnist_conv training, batch 100: fp32 {fp32:.0f} images/s, bf16 autocast + channels-last "
          f"{bf16:.0f} images/s ({bf16 / fp32:.2f}×)")


if __name__ == "__main__":
    main()
