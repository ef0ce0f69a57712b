"""The `optsearch` command: show, evaluate, search, funnel, panel, build-panel, benchmark, report, tasks, export.

Bad input is one line on stderr and exit code 2, never a traceback. Ctrl-C (SIGINT) and SIGTERM stop a command
the same way (a search keeps every finished trial and shuts its workers down); the exit code is then 130 after
SIGINT and 143 after SIGTERM (128 + the signal's number).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()
MAX_CLI_GROUPS = 4
"""The most token groups `search --groups` takes: the paper's AddSign with linear decay,
`(1 + ld * sign(g) * sign(m)) * g`, needs four; more grows the space past what a search on 2 cores explores."""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class _Interrupt:
    """Exit code of an interrupted command: 128 + the number of the signal that stopped it."""

    code = 128 + signal.SIGINT


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (kill, a scheduler's stop) is handled as Ctrl-C, so a search stops cleanly; exit code 143."""
    _Interrupt.code = 128 + signum
    raise KeyboardInterrupt


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line like every other error (no usage block), raised for `main` to print."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def _rule(text: str):
    """A zoo name or rule text → Rule (RuleError, a ValueError, names what is wrong)."""
    from optsearch.optim import resolve

    return resolve(text)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`)."""
    allowed = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed: {allowed}")
        return value

    return parse


def check_output_path(path: str, folder: bool = False) -> str:
    """Refuse, before any work, an output path that could not be written: its parent folder must exist, and it
    must not be an existing folder (a file output) or an existing file (a `folder` output)."""
    p = Path(path)
    kind = "folder" if folder else "file"
    if not p.parent.is_dir():
        raise UsageError(f"got {path!r}, but the folder {str(p.parent)!r} does not exist; allowed: a {kind} in an "
                         "existing folder")
    if p.exists() and p.is_dir() != folder:
        raise UsageError(f"got {path!r}, an existing {'file' if folder else 'folder'}; allowed: a {kind} path")
    return path


def output_file(path: str) -> str:
    """An argparse type for a file the command writes (e.g. evaluate's --json, --csv)."""
    try:
        return check_output_path(path)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def output_folder(path: str) -> str:
    """An argparse type for a folder the command writes into (report's and benchmark's --out)."""
    try:
        return check_output_path(path, folder=True)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def settings_from_args(args: argparse.Namespace):
    """The child-task options (see `child_options`) as validated `Settings`: bad input fails here, before work."""
    from optsearch.tasks.settings import PAPER_LRS, Settings

    return Settings(args.task, PAPER_LRS if args.lrs is None else tuple(args.lrs), args.steps, args.batch_size,
                    args.seed, args.device, args.data_dir, args.precision, args.fidelity, args.extend_lrs, args.seeds)


def child_from_args(args: argparse.Namespace):
    """`settings_from_args`, or a validated `Suite` when --task names several tasks (a,b,c or a suite's name)."""
    from optsearch.tasks.suite import Suite, suite_aggregate, suite_tasks

    tasks = suite_tasks(args.task)
    aggregate = suite_aggregate(tasks, args.aggregate)
    if tasks is None:
        return settings_from_args(args)
    return Suite.of(tasks, settings_from_args(argparse.Namespace(**{**vars(args), "task": tasks[0]})), aggregate)


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
    from optsearch.transfer.guidance import describe, load_guidance

    lines = describe(args.rule, load_guidance().get(str(rule), []))
    for k, line in enumerate(lines):
        console.print(f"[bold]learning rate[/] {line}" if k == 0 else line, highlight=False, soft_wrap=True)
    return 0


# --- evaluate ----------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from optsearch.tasks import evaluate_settings, get_task
    from optsearch.tasks.suite import Suite

    settings = child_from_args(args)
    rules = [_rule(text) for text in args.rules]
    if isinstance(settings, Suite):
        return _evaluate_suite(args, rules, settings)
    settings.check_device()
    settings.check_data()
    scoring = get_task(settings.task).scoring
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"training {len(rules)} rule(s) on {args.task}"), BarColumn(),
                  TextColumn("member-steps"), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        job = bar.add_task("evaluate", total=None)
        evals = evaluate_settings(rules, settings, lambda done, total: bar.update(job, completed=done, total=total))
    over = "" if settings.seeds is None else f", mean over seeds {', '.join(map(str, settings.seeds))} at one lr"
    table = _table(f"{args.task}: reward = best validation {scoring.reward_text} over the learning-rate grid" + over,
                   ("rule", "reward", "best lr", f"test {scoring.reward_text}", "status", "time (s)"),
                   ("rule", "status"))
    for text, ev in zip(args.rules, evals, strict=True):
        d = ev.to_dict()
        best = next((p for p in d.get("per_lr", []) if p.get("lr") == d.get("best_lr")), {})
        test = best.get("test_acc")
        reward = f"{ev.reward:.4f}" + ("" if ev.sem is None else f" ± {ev.sem:.4f}")
        status = d["status"] + ("" if ev.stopped_at is None else f" (stopped at step {ev.stopped_at})")
        table.add_row(text if text == str(ev.rule) else f"{text}  [dim]{ev.rule}[/]", reward,
                      "-" if d.get("best_lr") is None else f"{d['best_lr']:g}",
                      "-" if test is None else f"{test:.4f}", status + (f": {d['reason']}" if d.get("reason") else ""),
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


def _evaluate_suite(args: argparse.Namespace, rules, suite) -> int:
    """`optsearch evaluate --task a,b`: the aggregate reward and, per task, the raw score and the normalized one."""
    from optsearch.tasks.suite import evaluate_suite, score_cell, score_header

    if args.csv:
        raise UsageError("--csv is for one task; a suite's results are nested: use --json")
    suite.settings[0].check_device()
    with console.status(f"training {len(rules)} rule(s) and the suite's baselines on {suite.name}"):
        evals = evaluate_suite(rules, suite)
    table = _table(f"suite {suite.name}: reward = {suite.aggregate} of each task's score normalized to its tuned "
                   "baselines (0 = the worst, 1 = the best)",
                   ("rule", "reward", *map(score_header, suite.tasks), "status", "time (s)"),
                   ("rule", "status"))
    for text, ev in zip(args.rules, evals, strict=True):
        cells = [score_cell(s.raw, s.normalized) for s in ev.scores]
        table.add_row(text, f"{ev.reward:+.4f}", *cells, ev.status.value + (f": {ev.reason}" if ev.reason else ""),
                      f"{ev.wall_time:.1f}")
    console.print(table)
    if args.json:
        Path(args.json).write_text(json.dumps([e.to_dict() for e in evals], indent=2))
    return 0


def _table(title: str, headers: Sequence[str], left: Sequence[str]) -> Table:
    """A table whose `left` columns hold text (aligned left) and the others numbers (aligned right)."""
    table = Table(title=title)
    for col in headers:
        table.add_column(col, justify="left" if col in left else "right")
    return table


# --- search ------------------------------------------------------------------------------------
def leaderboard(trials, top: int = 10, title: str = "leaderboard") -> Table:
    from optsearch.engine.store import BASELINE
    from optsearch.tasks.suite import score_cell, score_header

    tasks = next(([s["task"] for s in t.scores] for t in trials if t.scores), [])  # a suite search's tasks
    columns = [score_header(task) for task in tasks] or ["best lr"]
    table = _table(title, ("#", "rule", "reward", *columns, "status"), ("rule", "status"))
    for i, t in enumerate(trials[:top], 1):
        rule = f"{t.rule}  [dim](baseline)[/]" if t.strategy == BASELINE else t.rule
        by_task = {s["task"]: s for s in t.scores}
        cells = ([score_cell(by_task[task]["raw"], by_task[task]["normalized"]) if task in by_task else "-"
                  for task in tasks] if tasks else ["-" if t.best_lr is None else f"{t.best_lr:g}"])
        table.add_row(str(i), rule, f"{t.reward:.4f}", *cells, t.status)
    return table


def cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from optsearch.engine import SearchExists, search

    settings = child_from_args(args)
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    jobs = []  # the bar starts with the first progress, so an error before the search is just the error

    def show(p) -> None:
        if not jobs:
            bar.start()
            jobs.append(bar.add_task("search", total=args.budget, info=""))
        best = "-" if p.best_rule is None else f"{p.best_reward:.4f} {p.best_rule[:40]}"
        bar.update(jobs[0], completed=p.done,
                   info=f"unique {p.unique_ratio:.0%} · {p.per_minute:.0f}/min · best {best}")

    try:
        result = search(settings=settings, strategy=args.strategy, budget=args.budget, db=args.db,
                        resume=args.resume or (False if args.db else None), workers=args.workers,
                        executor=args.executor, address=args.address, groups=args.groups, decays=args.decays,
                        batch=args.batch, duplicate_penalty=args.duplicate_penalty, max_samples=args.max_samples,
                        penalty_mode=args.duplicate_penalty_mode,
                        **({} if args.entropy_weight is None else {"entropy_weight": args.entropy_weight}),
                        on_progress=show)
    except SearchExists:
        raise UsageError(f"{args.db} already holds a search; pass --resume to continue it or choose another --db"
                         ) from None
    finally:
        if jobs:
            bar.stop()
    console.print(leaderboard(result.trials, args.top))
    console.print(f"{result.n_unique} unique rules evaluated from {result.n_samples} sampled; "
                  f"stopped: {result.stopped}" + (f"; trials in {result.db}" if args.db else ""))
    if result.stopped == "sample cap":
        console.print(f"reached the sample cap of {result.max_samples} sampled rules ({result.n_duplicates} of them "
                      "repeats of known rules): go on with --resume and a larger --max-samples")
        if 2 * result.n_duplicates > result.n_samples:
            console.print("the strategy kept re-sampling rules it knew: a larger --duplicate-penalty helps (1.0 tells "
                          "a repeat less than any new rule on an accuracy scale)")
    return _Interrupt.code if result.stopped == "interrupted" else 0


# --- funnel ------------------------------------------------------------------------------------
def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    return names


def _budgets(text: str) -> int | dict[str, int]:
    """`--steps`: one number for every task, or TASK=N pairs separated by commas."""
    allowed = "allowed: a number, or TASK=N pairs separated by commas, one per task"
    budgets: dict[str, int] = {}
    try:
        if "=" not in text:
            return int(text)
        for item in _names(text):
            task, _, n = (part.strip() for part in item.partition("="))
            if not task or task in budgets:
                why = "names no task" if not task else f"gives {task} a second time"
                raise argparse.ArgumentTypeError(f"got {text!r}: {item.strip()!r} {why}; {allowed}")
            budgets[task] = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; {allowed}") from None
    return budgets


def cmd_funnel(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from optsearch.engine.funnel_plan import FUNNEL_BASELINES, REFERENCE_RULES
    from optsearch.engine.funnel_run import funnel
    from optsearch.engine.funnel_text import (
        PREDICTION_HEADERS,
        STANDING_HEADERS,
        entry_headers,
        entry_texts,
        explanation,
        number_text,
        prediction_texts,
        progress_text,
        standing_texts,
        suite_text,
        table_state,
        versus_text,
    )
    from optsearch.engine.store import BASELINE

    bar = Progress(TextColumn("[bold]funnel {task.fields[stage]}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} evaluations"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console)
    jobs: dict[str, int] = {}  # the bar starts with the first progress, so an error before the work is just the error

    def show(p) -> None:
        if not jobs:
            bar.start()
        if p.stage not in jobs:
            jobs[p.stage] = bar.add_task(p.stage, total=p.total, stage=p.stage)
        bar.update(jobs[p.stage], completed=p.done, total=p.total)

    try:
        result = funnel(args.db, top=args.top, seeds=args.seeds, finalists=args.finalists, tasks=args.tasks,
                        tune_seeds=args.tune_seeds, score_seeds=args.score_seeds, steps=args.steps, lrs=args.lrs,
                        baselines=[*FUNNEL_BASELINES, *(args.baselines or [])],
                        references=REFERENCE_RULES if args.references is None else args.references,
                        also=args.also or (), workers=args.workers,
                        executor=args.executor, address=args.address, on_progress=show)
    finally:
        if jobs:
            bar.stop()
    for table in [result.proxy, *result.transfer]:
        own = "stage 2, the search's suite" if table.tasks else "stage 2, the search's task"
        stage = own if table.stage == "proxy" else "stage 3, held out"
        tuned = f", lr tuned on {len(table.tune_seeds)} others" if table.tune_seeds else ""
        state = table_state(table)
        out = _table(f"{table.task} ({stage}; {len(table.seeds)} seeds{tuned}" + (f"; {state})" if state else ")"),
                     entry_headers(table), ("rule", "verdict"))
        for rank, entry in enumerate(table.entries, 1):
            out.add_row(*entry_texts(rank, entry), style="dim" if entry.role == BASELINE else None)
        console.print(out)
        scoring = suite_text(result) if table is result.proxy else None
        if scoring:
            console.print(scoring, highlight=False)
        versus = versus_text(table)
        if versus:
            console.print(versus, highlight=False)
    tasks = [t.task for t in result.transfer]
    board = _table("leaderboard over the held-out tasks (gap to each task's best baseline)",
                   (*STANDING_HEADERS, *tasks), ("rule",))
    for rank, standing in enumerate(result.leaderboard, 1):
        board.add_row(*standing_texts(rank, standing, tasks))
    console.print(board)
    agreement = _table("how well the cheap stages ranked the finalists on each held-out task", PREDICTION_HEADERS,
                       ("held-out task",))
    for p in result.predictiveness:
        agreement.add_row(*prediction_texts(p))
    console.print(agreement)
    pairs, rho = result.winners_curse
    console.print(explanation(result), highlight=False)
    console.print(f"stage 1 (search reward) vs stage 2 (mean over fresh seeds): Spearman "
                  f"{number_text(rho, '.2f')} over {len(pairs)} rules; {result.computed} evaluations computed now, "
                  f"{result.reused} found in the db; stopped: {result.stopped}", highlight=False)
    unfinished = progress_text(result)
    if unfinished:
        console.print(unfinished, highlight=False)
    return _Interrupt.code if result.stopped == "interrupted" else 0


# --- panel -------------------------------------------------------------------------------------
def cmd_panel(args: argparse.Namespace) -> int:
    from optsearch.engine.panel import judge, read_panel
    from optsearch.tasks.suite import Suite

    proxy = child_from_args(args)
    panel = read_panel(args.panel)
    (proxy.settings[0] if isinstance(proxy, Suite) else proxy).check_device()
    name = proxy.name if isinstance(proxy, Suite) else proxy.task
    with console.status(f"scoring {len(panel.rules)} panel rules on the proxy {name}"):
        verdict = judge(panel, proxy)
    table = _table(f"proxy {verdict.proxy} on the panel {args.panel} ({verdict.rules} rules; held out: "
                   f"{', '.join(panel.tasks)})", ("Spearman with", "rho", "95% interval"), ("Spearman with",))
    for c in [verdict.mean_rank, *verdict.tasks]:
        table.add_row(c.against, f"{c.rho:+.2f}", f"[{c.low:+.2f}, {c.high:+.2f}]")
    console.print(table)
    seeds = ", ".join(f"{task} {len(panel.seeds(task))}" for task in panel.tasks)
    console.print(f"panel reliability (the ceiling): split-half Spearman of the held-out mean rank "
                  f"{verdict.split_half:+.2f}, stepped up to all seeds {verdict.reliability:+.2f} (seeds: {seeds})",
                  highlight=False)
    for a, b, rho in verdict.agreement:
        console.print(f"held-out tasks agree: {a} vs {b} Spearman {rho:+.2f}", highlight=False)
    console.print(f"proxy cost: {verdict.seconds_per_rule:.2f} s per rule", highlight=False)
    return 0


def cmd_build_panel(args: argparse.Namespace) -> int:
    from optsearch.engine.panel import build_panel

    check_output_path(args.panel)
    with console.status(f"scoring {len(args.rules)} rules on {', '.join(args.tasks)}") as status:
        first = args.seed + args.tune_seeds  # score seeds follow the tuning seeds
        computed = build_panel(args.panel, args.rules, args.tasks, range(first, first + args.seeds),
                               steps=args.steps, lrs=args.lrs, precision=args.precision,
                               tune_seeds=range(args.seed, first),
                               on_result=lambda task, done, n: status.update(f"{task}: {done} of {n} rules done"))
    console.print(f"{computed} results computed into {args.panel} (rows already there were kept)")
    return 0


# --- tasks -------------------------------------------------------------------------------------
SOURCE_WIDTH = 32
"""The wide `tasks` table wraps its free-text last column (where the data comes from) at this width."""


def cmd_tasks(args: argparse.Namespace) -> int:
    """One table where it fits the terminal (as wide as the console reads it, e.g. from COLUMNS), else one block
    per task: a table squeezed into a narrow terminal would cut every value to 'acc…'."""
    from rich.measure import Measurement
    from rich.padding import Padding

    from optsearch.tasks import task_table

    rows = task_table(args.data_dir)
    title = "tasks (for evaluate, search and benchmark); a search's reward is higher-is-better"
    caption = ("checkpoint val: validation examples the intermediate checkpoints score (a fixed subset; the end of "
               "training scores the full split); bf16 auto: whether --precision auto may use bf16\nyour own task: "
               "--task path/to/file.py:make_task (a function returning optsearch.Task)")
    table = Table(title=title, caption=caption)
    headers = list(rows[0])
    for col in headers:
        last = col == headers[-1]
        table.add_column(col, no_wrap=not last, max_width=SOURCE_WIDTH if last else None)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    natural = Measurement.get(console, console.options.update_width(sys.maxsize), table).maximum
    if natural <= console.width:
        console.print(table)
        return 0
    console.print(title, highlight=False)
    for row in rows:
        name, *fields = row.items()
        block = Table.grid(padding=(0, 2))
        block.add_column(no_wrap=True)
        block.add_column(overflow="fold")
        for key, value in fields:
            block.add_row(key, str(value))
        console.print()
        console.print(f"[bold]{name[1]}[/]", highlight=False)
        console.print(Padding(block, (0, 0, 0, 2), expand=False), highlight=False)
    console.print()
    console.print(caption, highlight=False)
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
    from optsearch.report.page import check_report_folder

    args.db = args.db or args.db_opt
    if (args.db is None) == (args.benchmark is None):
        raise UsageError("give a search db (optsearch report RUN.sqlite) or --benchmark DIR, not both")
    if args.db is not None and not Path(args.db).is_file():
        what = "a folder" if Path(args.db).is_dir() else "nothing"
        raise UsageError(f"no search db at {args.db} ({what} is there); allowed: a search's SQLite file")
    for folder in args.benchmark or []:
        if not Path(folder).is_dir():
            raise UsageError(f"no benchmark directory at {folder}")
    check_report_folder(args.out)
    page = (write_report(args.db, args.out, top=args.top) if args.db is not None
            else write_benchmark_report(args.benchmark, args.out))
    console.print(f"report written: {page} (and report.md beside it)")
    return 0


# --- export ------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from optsearch.exporters import export

    out = Path(args.output) if args.output not in (None, "-") else None
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: the folder {out.parent} does not exist")
    source = export(args.rule, to=args.to, name=args.name)
    if out is None:
        sys.stdout.write(source)
    else:
        out.write_text(source)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from optsearch.engine.config import (
        DUPLICATE_PENALTY,
        PENALTY_MODES,
        SEARCH_EXTENDS_LRS,
        SEARCH_FIDELITY,
        SEARCH_TASK,
    )
    from optsearch.tasks.registry import DEFAULT_TASK
    from optsearch.tasks.suite import AGGREGATES, DEFAULT_AGGREGATE, SUITES

    parser = _Parser(prog="optsearch", description=__doc__.splitlines()[0],
                     epilog="exit codes: 0 done, 2 bad input, 130 stopped by Ctrl-C (SIGINT), "
                            "143 stopped by SIGTERM; a stopped search keeps every finished trial")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("show", help="show a rule: infix, LaTeX, token groups, state it needs")
    p.add_argument("rule", nargs="?", help="rule text or zoo name")
    p.add_argument("--zoo", action="store_true", help="list the zoo of named rules")
    p.set_defaults(fn=cmd_show)

    def child_options(p: argparse.ArgumentParser, task: str = DEFAULT_TASK) -> None:
        p.add_argument("--task", default=task,
                       help=f"a task (see `optsearch tasks`) or path/to/file.py:make_task, or a suite: tasks separated "
                       f"by commas, cheapest first, or {', '.join(SUITES)} (default {task})")
        p.add_argument("--aggregate", choices=AGGREGATES,
                       help=f"a suite's reward: the mean or the min of its normalized task scores "
                       f"(default {DEFAULT_AGGREGATE})")
        p.add_argument("--lrs", type=_floats, help="learning-rate grid, e.g. 1e-4,1e-3,1e-2")
        p.add_argument("--steps", type=int, help="training steps per member (default: the task's)")
        p.add_argument("--batch-size", type=int, help="minibatch size (default: the task's)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
        p.add_argument("--data-dir", help="where the task's dataset lives, if not the default")
        p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                       help="child forward/backward precision (auto: bf16 where the hardware has it)")
        p.add_argument("--threads", type=_whole(1), default=1,
                       help="torch threads in this process (1 is fastest for small children; use --workers)")
        p.add_argument("--fidelity", default="full", choices=("full", "halving"),
                       help="halving: stop hopeless learning rates and rules early (default: full for evaluate, "
                            "halving for search and panel)")
        p.add_argument("--extend-lrs", action=argparse.BooleanOptionalAction, default=False,
                       help="try the next decade while a rule's best learning rate is at the grid's edge (default: "
                            "off for evaluate, on for search and panel)")
        p.add_argument("--seeds", type=_whole(1), default=1,
                       help="score each rule on N seeds (--seed … --seed + N - 1): mean reward at one lr")

    p = sub.add_parser("evaluate", help="train rules on a child task and print their rewards")
    p.add_argument("rules", nargs="+", help="rule texts or zoo names")
    child_options(p)
    p.add_argument("--json", type=output_file, help="also write the results as JSON to this file")
    p.add_argument("--csv", type=output_file, help="also write the results as CSV to this file")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("search", help="search for update rules")
    child_options(p, SEARCH_TASK)
    p.set_defaults(fidelity=SEARCH_FIDELITY, extend_lrs=SEARCH_EXTENDS_LRS)
    p.add_argument("--strategy", default="ppo", help="ppo, reinforce, random or evolution")
    p.add_argument("--budget", type=_whole(1), default=100, help="unique rules to evaluate")
    p.add_argument("--db", help="SQLite trial store (kept; resumable)")
    p.add_argument("--resume", action="store_true", help="continue the search in --db")
    p.add_argument("--workers", type=_whole(1), default=1)
    p.add_argument("--executor", default="inline", help="inline, process or ray")
    p.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    p.add_argument("--groups", type=_whole(1, MAX_CLI_GROUPS), default=2,
                   help=f"token groups per rule (1-{MAX_CLI_GROUPS})")
    p.add_argument("--decays", action="store_true", help="include the decay operands ld, cd, rd, eps_t")
    p.add_argument("--batch", type=_whole(1), help="rules asked per round (default 8 × workers)")
    p.add_argument("--duplicate-penalty-mode", default="constant", choices=PENALTY_MODES,
                   help="count: a re-sample loses --duplicate-penalty times how often the rule was sampled before")
    p.add_argument("--entropy-weight", type=float,
                   help="ppo / reinforce: weight of the controller's entropy bonus, which keeps it exploring "
                   "(default 0.0015)")
    p.add_argument("--duplicate-penalty", type=float, default=DUPLICATE_PENALTY,
                   help="subtracted from a re-sampled rule's reward when told to the strategy")
    p.add_argument("--max-samples", type=_whole(1),
                   help="stop after this many sampled rules, duplicates included, over the whole search "
                   "(default 20 × budget)")
    p.add_argument("--top", type=_whole(1), default=10, help="rows of the final leaderboard")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("funnel", help="after a search: re-score its best rules over fresh seeds and on held-out "
                       "tasks against tuned baselines (resumable; results in the same db)")
    p.add_argument("db", help="the search's SQLite db")
    p.add_argument("--top", type=_whole(1), default=20, help="stage 2: the search's best K rules (default 20)")
    p.add_argument("--seeds", type=_whole(2), default=10, help="stage 2: fresh seeds on the search's task or "
                   "every task of its suite (10)")
    p.add_argument("--finalists", type=_whole(1), default=10, help="stage 3: the best M of stage 2 (default 10)")
    p.add_argument("--tasks", type=_names, help="stage 3: held-out tasks, comma separated "
                   "(default fashion_mnist_conv,kjv_char_lstm, less the search's own or its suite's)")
    p.add_argument("--tune-seeds", type=_whole(1), default=3, help="stage 3: seeds per task that tune each rule's "
                   "learning rate on the grid (default 3)")
    p.add_argument("--score-seeds", type=_whole(2), default=10, help="stage 3: other, fresh seeds per task that "
                   "score the tuned rate alone and decide the verdicts (default 10)")
    p.add_argument("--steps", type=_budgets, help="stage 3: steps per member, for every task or TASK=N,... "
                   "(default: each task's own budget)")
    p.add_argument("--lrs", type=_floats, help="stage 3: learning-rate grid (default: the search's), "
                   "extended a decade while a rule's best lr is at its edge")
    p.add_argument("--baselines", nargs="+", help="more baselines (zoo names or rule texts) beside "
                   "sgd, momentum, adam, rmsprop, adam * cd and m * cd")
    p.add_argument("--references", nargs="*", help="the paper's rules to show beside the baselines, never judged "
                   "against (default powersign-ld powersign-cd addsign-ld addsign-cd nos12; the flag alone: none)")
    p.add_argument("--also", nargs="+", help="rules from elsewhere (zoo names or rule texts, e.g. a control "
                   "search's best) judged as found rules in every stage, always taken to stage 3")
    p.add_argument("--workers", type=_whole(1), default=1)
    p.add_argument("--executor", default="inline", help="inline, process or ray")
    p.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    p.add_argument("--threads", type=_whole(1), default=1, help="torch threads in this process")
    p.set_defaults(fn=cmd_funnel)

    p = sub.add_parser("panel", help="judge a proxy (a task or a suite): Spearman of its reward with held-out "
                       "results on a panel of rules, with bootstrap intervals and the panel's own reliability")
    p.add_argument("panel", help="a panel (optsearch build-panel) or a funnel's db: held-out rows of fixed rules")
    child_options(p, SEARCH_TASK)
    p.set_defaults(fn=cmd_panel, fidelity=SEARCH_FIDELITY, extend_lrs=SEARCH_EXTENDS_LRS)  # the reward a search sees

    p = sub.add_parser("build-panel", help="score fixed rules on held-out tasks over seeds into a panel file "
                       "(resumable: rows present are kept)")
    p.add_argument("panel", help="the panel's SQLite file (created, or completed)")
    p.add_argument("--rules", nargs="+", required=True, help="zoo names or rule texts (3 or more)")
    p.add_argument("--tasks", type=_names, required=True, help="held-out tasks, comma separated")
    p.add_argument("--seeds", type=_whole(1), default=3, help="scored seeds per task (default 3): --seed … "
                   "--seed + N - 1, or after the tuning seeds")
    p.add_argument("--tune-seeds", type=_whole(0), default=0, help="tune each rule's lr on this many seeds first "
                   "(--seed …), then train that lr alone on --seeds fresh ones (default 0: tune on the scored seeds)")
    p.add_argument("--seed", type=_whole(0), default=0)
    p.add_argument("--steps", type=_budgets, help="steps per member, for every task or TASK=N,... (default: each "
                   "task's)")
    p.add_argument("--lrs", type=_floats, help="learning-rate grid (default: the paper's), extended a decade "
                   "while a rule's best lr is at its edge")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--threads", type=_whole(1), default=1, help="torch threads in this process")
    p.set_defaults(fn=cmd_build_panel)

    p = sub.add_parser("benchmark", help="transfer benchmark: optimizers × lr grid × seeds on a bigger task")
    p.add_argument("optimizers", nargs="+", help="zoo names (sgd, momentum, adam, powersign-ld, ...) or rules")
    p.add_argument("--task", default="fashion_mnist_conv",
                   help="a task (see `optsearch tasks`) or path/to/file.py:make_task")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the task's benchmark budget)")
    p.add_argument("--lrs", type=_floats, help="learning-rate grid (default: 7 log-spaced values)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=output_folder, help="directory for benchmark.json, summary.csv, curves.csv")
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
    p.add_argument("--out", required=True, type=output_folder,
                   help="directory for index.html, report.md and the plots")
    p.add_argument("--top", type=_whole(1), default=10)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("tasks", help="list the tasks: metric, search and benchmark budgets, whether data is here")
    p.add_argument("--data-dir", help="also look for datasets here (e.g. your CIFAR-10 python batches)")
    p.set_defaults(fn=cmd_tasks)

    p = sub.add_parser("export", help="write a rule out as a standalone torch optimizer or optax transformation")
    p.add_argument("rule", help="zoo name (powersign, nos12, ...) or rule text")
    p.add_argument("--to", default="torch", help="torch (a torch.optim.Optimizer file) or optax")
    p.add_argument("--name", help="class (torch) or function (optax) name; default from the zoo name, or FoundRule")
    p.add_argument("-o", "--output", help="file to write (default, or -: stdout)")
    p.set_defaults(fn=cmd_export)
    return parser


EXPECTED_ERRORS = (UsageError, ValueError, OSError, sqlite3.DatabaseError)
"""Bad input, a file that cannot be read or written, a db that is not one: one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = None
    _Interrupt.code = 128 + signal.SIGINT
    previous = signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C stops cleanly even where SIGINT was inherited ignored (a shell's background job), as documented
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        return args.fn(args)
    except EXPECTED_ERRORS as exc:
        db = getattr(args, "db", None)
        where = f"{db}: " if isinstance(exc, sqlite3.DatabaseError) and db else ""
        print(f"optsearch: error: {where}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optsearch: interrupted", file=sys.stderr)
        return _Interrupt.code
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
