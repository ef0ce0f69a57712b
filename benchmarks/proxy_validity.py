"""Which reward predicts held-out results? Each cheap proxy, and suites of them, judged on a proxy-validity panel.

Scores every panel rule once on each proxy task at the search's settings (halving, the paper's grid extended at its
edges, the task's own budget, seed 0: exactly the reward `optsearch panel --task T` computes), caching each rule's
result and CPU seconds in `--out/proxy-TASK.json` (resumable). A suite's reward is then rebuilt from the cached task
results with the suite's own code (`tasks.suite.suite_scores`, the skip rule of `goes_on`), so `transfer` mean and
min cost no extra training. A proxy task that is also one of the panel's held-out tasks is judged against the
panel's other tasks only, and its reward is read from the panel's tuning rows (seed 0, the panel's grid) rather than
retrained. Prints a markdown table: Spearman with the held-out mean rank and with each task (bootstrap 95%
intervals over rules), CPU seconds per rule, and the panel's own reliability (the ceiling).

    python benchmarks/proxy_validity.py --panel docs/panel/panel.sqlite --out runs/proxies
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from scipy.stats import rankdata

from optsearch.engine.config import SEARCH_EXTENDS_LRS, SEARCH_FIDELITY
from optsearch.engine.funnel_plan import TRANSFER
from optsearch.engine.panel import Panel, Verdict, judge, read_panel
from optsearch.engine.store import Store
from optsearch.optim.zoo import resolve
from optsearch.tasks.evaluate import evaluate_settings
from optsearch.tasks.results import Evaluation
from optsearch.tasks.settings import Settings
from optsearch.tasks.suite import SKIP_BELOW, SUITES, Reference, Suite, goes_on, reference_of, suite_scores

PROXY_TASKS = ("mnist1d_large", "fashion_tiny_conv", "kjv_tiny_lstm")


def score_task(panel: Panel, task: str, out: Path) -> dict:
    """Each panel rule's reward on `task` at the search's settings, and the CPU seconds it took, cached."""
    path = out / f"proxy-{task}.json"
    done = json.loads(path.read_text()) if path.exists() else {"rules": {}, "reference": None}
    settings = Settings(task, fidelity=SEARCH_FIDELITY, extend_lrs=SEARCH_EXTENDS_LRS)
    if done["reference"] is None:
        start = time.process_time()
        done["reference"] = {"rewards": list(reference_of(settings).rewards), "cpu": time.process_time() - start}
        path.write_text(json.dumps(done))
    for fingerprint, text in panel.rules.items():
        if fingerprint not in done["rules"]:
            start = time.process_time()
            ev, = evaluate_settings([resolve(text)], settings)
            done["rules"][fingerprint] = {"rule": str(ev.rule), "reward": ev.reward, "status": ev.status.value,
                                          "best_lr": ev.best_lr, "cpu": time.process_time() - start}
            path.write_text(json.dumps(done))
    return done


def evaluations(panel: Panel, cache: dict, task: str) -> list[Evaluation]:
    return [Evaluation(cache["rules"][fp]["rule"], task, cache["rules"][fp]["reward"], cache["rules"][fp]["status"],
                       best_lr=cache["rules"][fp]["best_lr"]) for fp in panel.rules]


def cpu(panel: Panel, caches: list[dict], trained: list[list[bool]] | None = None) -> float:
    """Mean CPU seconds per rule over `caches` (where `trained`), leaving out each cache's first rule, whose time
    includes the halving floors' one-off reference run."""
    firsts = {next(iter(c["rules"])) for c in caches}
    seconds = [sum(c["rules"][fp]["cpu"] for k, c in enumerate(caches) if trained is None or trained[k][i])
               for i, fp in enumerate(panel.rules) if fp not in firsts]
    return statistics.fmean(seconds)


def held_out_reward(panel: Panel, path: str, task: str) -> list[float]:
    """Each rule's reward on a held-out task's tuning seed (the best validation score over the panel's grid)."""
    with Store(path, readonly=True) as store:
        rows = [r for r in store.evaluations() if r.stage == TRANSFER and r.task == task]
    first = min(r.seed for r in rows)
    by_rule = {r.fingerprint: r.evaluation.reward for r in rows if r.seed == first}
    return [by_rule[fp] for fp in panel.rules]


def without(panel: Panel, task: str) -> Panel:
    return Panel(panel.path, panel.rules, {t: r for t, r in panel.results.items() if t != task})


def row(name: str, verdict: Verdict, tasks: list[str], seconds: str) -> str:
    by_task = {c.against: c for c in verdict.tasks}
    cells = [f"{verdict.mean_rank.rho:+.2f} [{verdict.mean_rank.low:+.2f}, {verdict.mean_rank.high:+.2f}]"]
    cells += [f"{by_task[t].rho:+.2f} [{by_task[t].low:+.2f}, {by_task[t].high:+.2f}]" if t in by_task else "—"
              for t in tasks]
    return f"| {name} | " + " | ".join(cells) + f" | {seconds} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", default="docs/panel/panel.sqlite")
    parser.add_argument("--out", default="runs/proxies", help="where the per-task proxy results are cached")
    parser.add_argument("--tasks", nargs="+", default=list(PROXY_TASKS), help="cheap proxy tasks to score")
    parser.add_argument("--suites", nargs="*", default=["transfer", ",".join(PROXY_TASKS)],
                        help="built-in suites of those tasks, or tasks separated by commas, to judge (mean, min)")
    parser.add_argument("--skip-below", type=float, nargs="+", default=[SKIP_BELOW, 0.0],
                        help="skip thresholds to judge the suite at (normalized score on its first task)")
    parser.add_argument("--figure", help="also draw the proxies in --draw against the panel into this PNG")
    parser.add_argument("--draw", nargs="+", default=["mnist1d_large", "transfer mean"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    panel = read_panel(args.panel)
    caches = {task: score_task(panel, task, out) for task in args.tasks}
    tasks = panel.tasks
    print(f"panel {args.panel}: {len(panel.rules)} rules; held out: "
          + ", ".join(f"{t} ({len(panel.seeds(t))} seeds)" for t in tasks))
    print("\n| proxy | Spearman with held-out mean rank [95%] | " + " | ".join(tasks) + " | CPU s per rule |")
    print("|---|---|" + "---|" * len(tasks) + "---|")
    drawn: dict[str, list[float]] = {}  # proxy -> rewards, for the figure
    for task in args.tasks:
        values = [ev.reward for ev in evaluations(panel, caches[task], task)]
        drawn[task] = values
        seconds = cpu(panel, [caches[task]])
        print(row(task, judge(panel, Settings(task), rewards=(values, seconds)), tasks, f"{seconds:.1f}"))
    for task in tasks:  # a held-out task as its own proxy: judged on the others, from its tuning seed
        values = held_out_reward(panel, args.panel, task)
        print(row(f"{task} (tuning seed; vs the others)", judge(without(panel, task), Settings(task),
                                                                rewards=(values, 0.0)), tasks, "—"))
    for name in args.suites:
        judge_suite(panel, caches, name, args, drawn)
    verdict = judge(panel, Settings(args.tasks[0]), rewards=(drawn[args.tasks[0]], 0.0))
    print(f"panel reliability: split-half Spearman of the held-out mean rank {verdict.split_half:+.2f} "
          f"(Spearman-Brown {verdict.reliability:+.2f}); held-out tasks agree: "
          + "; ".join(f"{a} vs {b} {rho:+.2f}" for a, b, rho in verdict.agreement))
    if args.figure:
        figure(panel, {name: drawn[name] for name in args.draw if name in drawn}, args.figure)
        print(f"figure: {args.figure}")


def judge_suite(panel: Panel, caches: dict[str, dict], name: str, args: argparse.Namespace,
                drawn: dict[str, list[float]]) -> None:
    """The rows of the suite `name`: its reward rebuilt from the cached task results at each skip threshold and
    without skipping, mean and min."""
    suite_tasks = SUITES.get(name, tuple(name.split(",")))
    tasks = panel.tasks
    refs = {t: Reference(t, tuple((n, r) for n, r in caches[t]["reference"]["rewards"])) for t in suite_tasks}
    full = {t: evaluations(panel, caches[t], t) for t in suite_tasks}
    in_suite = [caches[t] for t in suite_tasks]
    every = cpu(panel, in_suite)
    skips = []
    for below in args.skip_below:
        on = goes_on(full[suite_tasks[0]], refs[suite_tasks[0]], below)
        per_task = {t: [ev if go or t == suite_tasks[0] else None for ev, go in zip(full[t], on, strict=True)]
                    for t in suite_tasks}
        seconds = cpu(panel, in_suite, [[True] * len(on) if t == suite_tasks[0] else on for t in suite_tasks])
        skips.append((below, [i for i, go in enumerate(on) if not go], seconds))
        for how in ("mean", "min"):
            suite = Suite.of(suite_tasks, Settings(suite_tasks[0]), how)
            values = [ev.reward for ev in suite_scores(per_task, refs, suite)]
            if below == SKIP_BELOW:
                drawn[f"{name} {how}"] = values
            print(row(f"{name} {how}, skip below {below:+.2f}", judge(panel, suite, rewards=(values, seconds)),
                      tasks, f"{seconds:.1f}"))
    for how in ("mean", "min"):
        suite = Suite.of(suite_tasks, Settings(suite_tasks[0]), how)
        values = [ev.reward for ev in suite_scores(full, refs, suite)]
        print(row(f"{name} {how}, no skip", judge(panel, suite, rewards=(values, every)), tasks, f"{every:.1f}"))
    ranks = rankdata(panel.mean_rank())  # what a skip throws away: the skipped rules' place held out
    for below, skipped, seconds in skips:
        print(f"skip below {below:+.2f}: {len(skipped)} of {len(panel.rules)} panel rules not trained past "
              f"{suite_tasks[0]} (held-out places {sorted(int(ranks[i]) for i in skipped)} of {len(ranks)}); "
              f"CPU per rule {seconds:.1f} s ({every:.1f} s without skipping)")


def figure(panel: Panel, proxies: dict[str, list[float]], path: str) -> None:
    """Each proxy's rank of the panel's rules against their held-out mean rank, and the panel's two halves (even
    against odd seeds) against each other: how close a proxy comes to the ceiling, rule by rule."""
    from matplotlib.figure import Figure

    truth = rankdata(panel.mean_rank())
    fig = Figure(figsize=(4 * (len(proxies) + 1), 4), layout="constrained")
    axes = fig.subplots(1, len(proxies) + 1, squeeze=False)[0]
    for ax, (name, values) in zip(axes, proxies.items(), strict=False):
        ax.scatter(rankdata([-v for v in values]), truth, s=14)
        ax.set(title=name, xlabel="rank by the proxy (1 = best)", ylabel="held-out mean rank (ranked)")
    ax = axes[-1]
    ax.scatter(rankdata(panel.mean_rank(0)), rankdata(panel.mean_rank(1)), s=14, color="gray")
    ax.set(title="the ceiling: even vs odd seeds", xlabel="held-out mean rank, even seeds",
           ylabel="held-out mean rank, odd seeds")
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
