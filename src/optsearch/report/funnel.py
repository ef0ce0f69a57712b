"""The funnel's part of a search report: stage 1 against stage 2, each task's ranking and forest plot, the final
leaderboard."""

from __future__ import annotations

import math
import re

import numpy as np
from scipy import stats

from optsearch.engine.funnel_analysis import Entry, FunnelResult, TaskTable
from optsearch.engine.funnel_plan import FOUND, PROXY, REFERENCE
from optsearch.engine.funnel_text import (
    PREDICTION_HEADERS,
    STANDING_HEADERS,
    entry_headers,
    entry_texts,
    explanation,
    prediction_texts,
    progress_text,
    standing_texts,
    suite_text,
    table_state,
    versus_text,
)
from optsearch.engine.stats import paired_differences
from optsearch.report import plots
from optsearch.report.page import Cell, Code, Image, Section, Table


def funnel_sections(result: FunnelResult) -> list[Section]:
    """The sections a report adds for a db whose funnel has run (complete or not)."""
    pairs, rho = result.winners_curse
    best = result.proxy.best_baseline
    image = Image("winners_curse.png", plots.winners_curse_png(
        [(e.rule, stage1, e.mean, e.sem) for e, stage1 in pairs], rho, best and (best.name, best.mean)),
        "stage 1 reward vs stage 2 mean",
        f"Each of the search's top {len(result.plan.candidates)} rules: its reward in the search against its mean "
        f"over {len(result.proxy.seeds)} fresh seeds (± standard error). Spearman ρ between them: "
        + ("n/a (fewer than 3 rules)" if math.isnan(rho) else f"{rho:.2f}")
        + ". A search picks its winners on one noisy reward, so they regress toward the mean on fresh seeds.")
    unfinished = progress_text(result)
    sections = [Section("Funnel: stage 1 vs stage 2 (the winner's curse)", [*([unfinished] if unfinished else []),
                                                                             image])]
    sections += [_task_section(result.proxy, suite_text(result)), *map(_task_section, result.transfer)]
    tasks = [t.task for t in result.transfer]
    rows: list[list[Cell]] = [_code_rule(standing_texts(rank, s, tasks))
                              for rank, s in enumerate(result.leaderboard, 1)]
    sections.append(Section("Funnel: final leaderboard", [
        f"Found rules ({len(result.finalists)} finalists) and baselines by mean rank over the held-out tasks "
        f"({', '.join(tasks)}); the last columns are the gap to each task's best baseline.",
        Table([*STANDING_HEADERS, *(f"gap on {t}" for t in tasks)], rows), explanation(result),
        "How well the cheap stages ranked the finalists on each held-out task: the Spearman correlation of their "
        "search rewards (stage 1), and of their means over fresh seeds on the search's "
        f"{'suite' if result.proxy.tasks else 'task'} (stage 2), with their means there. They rank a few rules from "
        "the top of stage 2, a narrow range: read them as rough.",
        Table(list(PREDICTION_HEADERS), [prediction_texts(p) for p in result.predictiveness])]))
    return sections


def _task_section(table: TaskTable, scoring: str | None = None) -> Section:
    """A task's section: its ranking, with `scoring` (how its scores are made) when it is not the usual."""
    own = "stage 2, the search's suite" if table.tasks else "stage 2, the search's own task"
    stage = own if table.stage == PROXY else "stage 3, held out"
    rows: list[list[Cell]] = [_code_rule(entry_texts(rank, e)) for rank, e in enumerate(table.entries, 1)]
    forest = _forest(table)
    references = sum(e.role == REFERENCE for e in table.entries)
    tuned = (f", the learning rate tuned on {len(table.tune_seeds)} others "
             f"({', '.join(map(str, table.tune_seeds))})" if table.tune_seeds else "")
    versus = versus_text(table)
    state = table_state(table)
    return Section(f"Funnel: {table.task} ({stage})", [
        f"{len(table.found)} found rules, {references} reference rules (the paper's) and "
        f"{len(table.entries) - len(table.found) - references} baselines scored over {len(table.seeds)} seeds "
        f"({', '.join(map(str, table.seeds))}){tuned}" + (f"; {state}." if state else "."),
        *([scoring] if scoring else []), *([versus] if versus else []), *([forest] if forest else []),
        Table(entry_headers(table), rows)])


def _forest(table: TaskTable) -> Image | None:
    """The task's forest plot: every scored rule's gap to the best baseline with its 95% interval (None before a
    baseline is scored, when there is no gap to draw)."""
    best = table.best_baseline
    if best is None:
        return None
    scored = [e for e in table.entries if not math.isnan(e.gap)]
    rows = [(e.name + ("" if e.role == FOUND else f" ({e.role})"), e.gap, gap_interval(e, best), e.verdict)
            for e in scored]
    name = re.sub(r"[^\w.-]", "_", f"forest_{table.stage}_{table.task}") + ".png"
    title = f"{table.task}: gap to the best baseline ({best.name}) over {len(table.seeds)} seeds"
    unit = "suite reward (normalized to baselines)" if table.tasks else "test score (reward scale: higher is better)"
    return Image(name, plots.forest_png(rows, title, f"gap in {unit}"),
                 f"forest plot: {table.task}",
                 f"Each rule's gap to the best baseline ({best.name}, the dashed line) with its 95% paired t "
                 "interval over the seeds, best first; colours are the table's verdicts, baselines black. The "
                 "verdicts are Holm-adjusted over the task's found rules and the intervals are not, so a rule whose "
                 "interval clears 0 can still tie."
                 + ("" if len(scored) == len(table.entries) else
                    f" Not drawn: {len(table.entries) - len(scored)} rule(s) not scored yet."))


def gap_interval(entry: Entry, best: Entry, level: float = 0.95) -> float:
    """Half-width of the `level` t interval of `entry`'s gap to `best` over the seeds both have: the interval the
    funnel's paired test inverts (NaN with fewer than two seeds; 0 for `best` itself)."""
    d = paired_differences(entry.scores, best.scores)
    if len(d) < 2:
        return math.nan
    return float(stats.t.ppf((1 + level) / 2, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d)))


def _code_rule(texts: list[str]) -> list[Cell]:
    return [texts[0], Code(texts[1]), *texts[2:]]
