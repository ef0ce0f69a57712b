"""The funnel's tables as text rows, shared by the command line and the report."""

from __future__ import annotations

import math
from collections.abc import Sequence

from optsearch.engine.funnel_analysis import Entry, FunnelResult, Prediction, Standing, TaskTable
from optsearch.engine.funnel_plan import FOUND, REFERENCE
from optsearch.engine.stats import ALPHA, POWER
from optsearch.engine.store import BASELINE
from optsearch.tasks.suite import LOWEST, score_cell, score_header

ENTRY_HEADERS = ("#", "rule", "lr", "mean ± sem", "gap", "p", "p (Holm)", "verdict", f"detectable ({POWER:.0%})",
                 "seeds")
STANDING_HEADERS = ("#", "rule", "mean rank", "beats / ties / loses")
PREDICTION_HEADERS = ("held-out task", "finalists", "Spearman with stage 1", "Spearman with stage 2")


def entry_headers(table: TaskTable) -> list[str]:
    """A task table's column titles: ENTRY_HEADERS, then one per task of a suite."""
    return [*ENTRY_HEADERS, *map(score_header, table.tasks)]


def entry_texts(rank: int, entry: Entry) -> list[str]:
    """A table row for `entry`, as `entry_headers` (the rule cell is a found rule's name — its text, marked when it
    came with `also` — or a baseline's or reference rule's name and text; a reference rule's verdict says it is
    one; a suite task's cell is the mean raw score and the mean normalized score)."""
    named = entry.role != FOUND and entry.label not in (None, entry.rule)
    name = f"{entry.label} ({entry.rule})" if named else entry.name
    return [str(rank), name, "—" if entry.lr is None else f"{entry.lr:g}",
            "—" if math.isnan(entry.mean) else f"{entry.mean:.4f} ± {number_text(entry.sem, '.4f')}",
            number_text(entry.gap, "+.4f"), number_text(entry.p, ".3g"), number_text(entry.p_adjusted, ".3g"),
            f"{entry.verdict} (reference)" if entry.role == REFERENCE else entry.verdict,
            number_text(entry.detectable, ".4f"), str(len(entry.scores)),
            *("—" if math.isnan(raw) or math.isnan(norm) else score_cell(raw, norm)
              for raw, norm in entry.per_task.values())]


def standing_texts(rank: int, s: Standing, tasks: Sequence[str]) -> list[str]:
    """A leaderboard row, as STANDING_HEADERS followed by the gap on each of `tasks`."""
    tally = "—" if s.role == BASELINE else f"{s.count('beats')} / {s.count('ties')} / {s.count('loses')}"
    return [str(rank), s.name + ("" if s.role == FOUND else f" ({s.role})"), f"{s.mean_rank:.2f}", tally,
            *(number_text(s.gaps.get(task, math.nan), "+.4f") for task in tasks)]


def prediction_texts(p: Prediction) -> list[str]:
    """A row of PREDICTION_HEADERS."""
    return [p.task, str(p.rules), number_text(p.stage1, "+.2f"), number_text(p.stage2, "+.2f")]


def table_state(table: TaskTable) -> str | None:
    """Why a task's verdicts are not final ("invalid: …", "incomplete: R of N results"), or None when they are."""
    if table.problem is not None:
        return f"invalid: {table.problem}"
    if table.results < table.expected:
        return f"incomplete: {table.results} of {table.expected} results"
    return None


def progress_text(result: FunnelResult) -> str | None:
    """A line saying the funnel is not finished (how many results of how many), or None when it is."""
    done, planned = result.progress
    if done >= planned:
        return None
    return (f"The funnel is incomplete: {done} of {planned} results are stored, so every verdict waits for the rest; "
            "run the funnel again to finish it.")


def versus_text(table: TaskTable) -> str | None:
    """Where the search's best rule on `table`'s task stands against the best reference rule (None without both)."""
    v = table.versus_references
    if v is None:
        return None
    return (f"{table.task}: the search's best, {v.found.rule}, is {v.gap:+.4f} against the best reference rule, "
            f"{v.reference.name} (paired p {number_text(v.p, '.3g')}, unadjusted).")


def suite_text(result: FunnelResult) -> str | None:
    """How stage 2 scores a suite search's rules (None for a single-task search)."""
    if not result.proxy.tasks:
        return None
    return (f"Stage 2 scores a rule on a seed with the search's reward on that seed: on each task of the suite, its "
            "test score at its tuned rate normalized against that seed's suite baselines ((score − the worst "
            f"baseline's) / (the best's − the worst's), clipped below at {LOWEST:g}), then the "
            f"{result.plan.aggregate} over the tasks. The per-task columns are the mean raw score and the mean "
            "normalized score over the seeds.")


def explanation(result: FunnelResult) -> str:
    """How to read the tables, with the limits of the test at this many seeds."""
    counts = sorted({len(t.seeds) for t in [result.proxy, *result.transfer]}) or [0]
    dof = (f"With {counts[0]} seeds the test has {counts[0] - 1} degree(s) of freedom" if len(counts) == 1 else
           f"With n seeds the test has n − 1 degrees of freedom (here {counts[0] - 1} to {counts[-1] - 1})")
    tuned = ("On the held-out tasks the rate is tuned on the tuning seeds and then trained alone on other, fresh "
             "seeds, which alone give the scores and the verdicts. " if any(t.tune_seeds for t in result.transfer)
             else "")
    return (f"Each rule's learning rate is tuned per task on the validation split (best mean over the seeds); "
            "the score is the test score at that rate (reward scale: higher is better), mean ± standard error "
            f"over seeds. {tuned}gap = mean − the best baseline's mean. p: two-sided paired "
            f"t-test against the best baseline over the same seeds (same initialization and minibatches), Holm-"
            f"adjusted over the task's found rules (the paper's reference rules apart, among themselves); beats / "
            f"loses when the adjusted p < {ALPHA} (by the gap's sign), else ties. {dof} "
            f"and assumes roughly normal differences: 'ties' means 'not shown to "
            f"differ', not 'equal'. detectable: the smallest true gap the test would call with {POWER:.0%} power at "
            f"Holm's strictest level ({ALPHA} / the number of rules judged), given the rule's observed seed-to-seed "
            "spread of its differences from the best baseline: a gain that size could hide in a 'ties'.")


def number_text(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or "—" where there is none (None or NaN), as every funnel table prints it."""
    return "—" if value is None or math.isnan(value) else format(value, spec)
