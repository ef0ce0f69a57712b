"""The `optsearch` command: show, evaluate, search, tasks, benchmark, report.

Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def _rule(text: str):
    """A zoo name or rule text → Rule."""
    from optsearch.dsl import parse
    from optsearch.optim import zoo

    return zoo[text].rule if text in zoo else parse(text)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


# --- show --------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from optsearch.optim import zoo

    if args.zoo:
        table = Table(title="the rule zoo")
        for col in ("name", "rule", "state", "about"):
            table.add_column(col)
        for name, entry in zoo.items():
            table.add_row(name, str(entry.rule), ", ".join(entry.rule.state) or "-", entry.description)
        console.print(table)
        return 0
    if not args.rule:
        raise UsageError("give a rule (e.g. 'g * exp(sign(g) * sign(m))' or a zoo name) or --zoo")
    rule = _rule(args.rule)
    console.print(f"[bold]rule[/]        {rule}")
    console.print(f"[bold]latex[/]       {rule.latex()}", markup=True, highlight=False)
    console.print(f"[bold]groups[/]      {len(rule.groups)}  (op1, op2, u1, u2, b) = b(u1(op1), u2(op2))")
    for k, group in enumerate(rule.groups):
        console.print(f"  o{k} = {group}", highlight=False)
    state = rule.state
    console.print(f"[bold]state[/]       {', '.join(state) or 'none'}  "
                  f"({4 * len(state)} bytes per fp32 parameter; Adam keeps 8)")
    console.print(f"[bold]complexity[/]  {rule.complexity}   [bold]fingerprint[/] {rule.fingerprint}")
    flags = [f for f, on in (("needs total_steps", rule.needs_total_steps), ("stochastic", rule.stochastic)) if on]
    if flags:
        console.print(f"[bold]notes[/]       {', '.join(flags)}")
    from optsearch.dsl import rejection

    reason = rejection(rule)
    if reason:
        console.print(f"[yellow]a search would skip this rule: {reason}[/]")
    return 0


# --- evaluate ----------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from optsearch.tasks import evaluate, get_task

    scoring = get_task(args.task).scoring
    rules = [_rule(text) for text in args.rules]
    kwargs = dict(task=args.task, lrs=args.lrs, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                  device=args.device, precision=args.precision)
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"training {len(rules)} rule(s) on {args.task}"), BarColumn(),
                  TextColumn("member-steps"), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        job = bar.add_task("evaluate", total=None)
        evals = evaluate(rules, progress=lambda done, total: bar.update(job, completed=done, total=total), **kwargs)
    table = Table(title=f"{args.task}: reward = best validation {scoring.reward_text} over the learning-rate grid")
    for col in ("rule", "reward", "best lr", f"test {scoring.reward_text}", "status", "time (s)"):
        table.add_column(col, justify="left" if col in ("rule", "status") else "right")
    for text, ev in zip(args.rules, evals, strict=True):
        d = ev.to_dict()
        best = next((p for p in d.get("per_lr", []) if p.get("lr") == d.get("best_lr")), {})
        test = best.get("test_acc")
        table.add_row(text if text == str(ev.rule) else f"{text}  [dim]{ev.rule}[/]", f"{d['reward']:.4f}",
                      "-" if d.get("best_lr") is None else f"{d['best_lr']:g}",
                      "-" if test is None else f"{test:.4f}", d["status"] + (f": {d['reason']}" if d.get("reason")
                                                                              else ""),
                      f"{d.get('wall_time', 0.0):.1f}")
    console.print(table)
    rows = [e.to_dict() for e in evals]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["rule", "reward", "best_lr", "status", "reason", "wall_time"])
            for r in rows:
                writer.writerow([r["rule"], r["reward"], r.get("best_lr"), r["status"], r.get("reason") or "",
                                 r.get("wall_time")])
    return 0


# --- search ------------------------------------------------------------------------------------
def leaderboard(trials, top: int = 10, title: str = "leaderboard") -> Table:
    table = Table(title=title)
    for col in ("#", "rule", "reward", "best lr", "status"):
        table.add_column(col, justify="right" if col in ("#", "reward", "best lr") else "left")
    for i, t in enumerate(trials[:top], 1):
        rule = f"{t.rule}  [dim](baseline)[/]" if t.strategy == "baseline" else t.rule
        table.add_row(str(i), rule, f"{t.reward:.4f}", "-" if t.best_lr is None else f"{t.best_lr:g}", t.status)
    return table


def cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from optsearch.engine import Store, search

    if args.db and Path(args.db).exists() and not args.resume:
        with Store(args.db) as store:
            if store.count_samples():
                raise UsageError(f"{args.db} already holds a search; pass --resume to continue it or choose "
                                 "another --db")
    if args.resume and not (args.db and Path(args.db).exists()):
        raise UsageError("--resume needs --db pointing at an existing search")
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    job = bar.add_task("search", total=args.budget, info="")

    def show(p) -> None:
        best = "-" if p.best_rule is None else f"{p.best_reward:.4f} {p.best_rule[:40]}"
        bar.update(job, completed=p.done,
                   info=f"unique {p.unique_ratio:.0%} · {p.per_minute:.0f}/min · best {best}")

    with bar:
        result = search(task=args.task, strategy=args.strategy, budget=args.budget, db=args.db, seed=args.seed,
                        workers=args.workers, executor=args.executor, address=args.address, steps=args.steps,
                        lrs=args.lrs, batch_size=args.batch_size, groups=args.groups, decays=args.decays,
                        batch=args.batch, device=args.device, precision=args.precision, data_dir=args.data_dir,
                        duplicate_penalty=args.duplicate_penalty, on_progress=show)
    console.print(leaderboard(result.trials, args.top))
    console.print(f"{result.n_unique} unique rules evaluated from {result.n_samples} sampled; "
                  f"stopped: {result.stopped}" + (f"; trials in {result.db}" if args.db else ""))
    return 130 if result.stopped == "interrupted" else 0


# --- tasks -------------------------------------------------------------------------------------
def cmd_tasks(args: argparse.Namespace) -> int:
    from optsearch.tasks import task_table

    rows = task_table(args.data_dir)
    table = Table(title="tasks (for evaluate, search and benchmark); a search's reward is higher-is-better",
                  caption="your own task: --task path/to/file.py:make_task (a function returning optsearch.Task)")
    for i, col in enumerate(rows[0]):
        table.add_column(col, no_wrap=i == 0)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    return 0


# --- benchmark and report ---------------------------------------------------------------------
def cmd_benchmark(args: argparse.Namespace) -> int:
    from optsearch.transfer import run_benchmark

    run_benchmark(args.optimizers, args.task, epochs=args.epochs, lrs=args.lrs, seeds=args.seeds, out_dir=args.out,
                  batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, data_fraction=args.data_fraction,
                  eval_size=args.eval_size,
                  data_dir=args.data_dir, console=console)
    if args.out:
        console.print(f"results in {args.out} (benchmark.json, summary.csv, curves.csv)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from optsearch.report import write_benchmark_report, write_report

    args.db = args.db or args.db_opt
    if (args.db is None) == (args.benchmark is None):
        raise UsageError("give a search db (optsearch report RUN.sqlite) or --benchmark DIR, not both")
    if args.db is not None and not Path(args.db).is_file():
        raise UsageError(f"no search db at {args.db}")
    for folder in args.benchmark or []:
        if not Path(folder).is_dir():
            raise UsageError(f"no benchmark directory at {folder}")
    page = (write_report(args.db, args.out, top=args.top) if args.db is not None
            else write_benchmark_report(args.benchmark, args.out))
    console.print(f"report written: {page} (and report.md beside it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optsearch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("show", help="show a rule: infix, LaTeX, token groups, state it needs")
    p.add_argument("rule", nargs="?", help="rule text or zoo name")
    p.add_argument("--zoo", action="store_true", help="list the zoo of named rules")
    p.set_defaults(fn=cmd_show)

    def child_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", default="mnist1d", help="a task (see `optsearch tasks`) or path/to/file.py:make_task")
        p.add_argument("--lrs", type=_floats, help="learning-rate grid, e.g. 1e-4,1e-3,1e-2")
        p.add_argument("--steps", type=int, help="training steps per member (default: the task's)")
        p.add_argument("--batch-size", type=int, help="minibatch size (default: the task's)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
        p.add_argument("--data-dir", help="where the task's dataset lives, if not the default")
        p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                       help="child forward/backward precision (auto: bf16 where the hardware has it)")
        p.add_argument("--threads", type=int, default=1,
                       help="torch threads in this process (1 is fastest for small children; use --workers)")

    p = sub.add_parser("evaluate", help="train rules on a child task and print their rewards")
    p.add_argument("rules", nargs="+", help="rule texts or zoo names")
    child_options(p)
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--csv", help="also write the results as CSV to this file")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("search", help="search for update rules")
    child_options(p)
    p.add_argument("--strategy", default="ppo", help="ppo, reinforce, random or evolution")
    p.add_argument("--budget", type=int, default=100, help="unique rules to evaluate")
    p.add_argument("--db", help="SQLite trial store (kept; resumable)")
    p.add_argument("--resume", action="store_true", help="continue the search in --db")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--executor", default="inline", help="inline, process or ray")
    p.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    p.add_argument("--groups", type=int, default=2, help="token groups per rule (1-3)")
    p.add_argument("--decays", action="store_true", help="include the decay operands ld, cd, rd, eps_t")
    p.add_argument("--batch", type=int, help="rules asked per round (default 8 × workers)")
    p.add_argument("--duplicate-penalty", type=float, default=0.1,
                   help="subtracted from a re-sampled rule's reward when told to the strategy")
    p.add_argument("--top", type=int, default=10, help="rows of the final leaderboard")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("benchmark", help="transfer benchmark: optimizers × lr grid × seeds on a bigger task")
    p.add_argument("optimizers", nargs="+", help="zoo names (sgd, momentum, adam, powersign-ld, ...) or rules")
    p.add_argument("--task", default="fashion_mnist_conv",
                   help="a task (see `optsearch tasks`) or path/to/file.py:make_task")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the task's benchmark budget)")
    p.add_argument("--lrs", type=_floats, help="learning-rate grid (default: 7 log-spaced values)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", help="directory for benchmark.json, summary.csv, curves.csv")
    p.add_argument("--batch-size", type=int, help="minibatch size (default: the task's benchmark budget)")
    p.add_argument("--steps-per-epoch", type=int, help="cap on minibatches per epoch")
    p.add_argument("--data-fraction", type=float, default=1.0, help="use this fraction of the training set")
    p.add_argument("--eval-size", type=int, help="evaluate on the first N validation/test examples")
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest for small models on a shared machine; more for big ones)")
    p.set_defaults(fn=cmd_benchmark)

    p = sub.add_parser("report", help="HTML + markdown report of a search db or a transfer benchmark")
    p.add_argument("db", nargs="?", help="search db (SQLite)")
    p.add_argument("--db", dest="db_opt", help=argparse.SUPPRESS)
    p.add_argument("--benchmark", nargs="+", help="benchmark --out directories (several of one setup are merged)")
    p.add_argument("--out", required=True, help="directory for index.html, report.md and the plots")
    p.add_argument("--top", type=int, default=10)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("tasks", help="list the tasks: metric, search and benchmark budgets, whether data is here")
    p.add_argument("--data-dir", help="also look for datasets here (e.g. your CIFAR-10 python batches)")
    p.set_defaults(fn=cmd_tasks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.fn(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"optsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
