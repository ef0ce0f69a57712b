"""The report of one search: read its SQLite store, draw the plots, write index.html and report.md."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from optsearch.dsl import RuleError, parse
from optsearch.engine.funnel_analysis import load_funnel
from optsearch.engine.store import BASELINE, Sample, Store, Trial
from optsearch.report import plots
from optsearch.report.formula import latex_png
from optsearch.report.funnel import funnel_sections
from optsearch.report.page import Cell, Code, Image, Page, Section, Table, write_page
from optsearch.report.series import evaluated, kind_counts, learning_curve, pareto_front

REFERENCES = {"Adam": "adam", "SGD": "g", "RMSProp": "rmsprop"}
"""Hand-designed optimizers as DSL rules: found in the db by fingerprint when the search evaluated them."""


def write_report(db_path: str | Path, out_dir: str | Path, top: int = 10) -> Path:
    """Write the search report for `db_path` into `out_dir`; returns the path of `index.html`.

    The db is opened read-only, so a report can run beside the search writing it and never alters a file that
    is not a search (StoreError says what it is instead). A db a funnel has run on also gets the funnel's
    sections (`report.funnel`)."""
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"no search database at {db_path}")
    with Store(db_path, readonly=True) as store:
        trials, samples, config = store.trials(order="reward"), store.samples(), store.get_meta("config") or {}
        funnel = load_funnel(store)
    done = evaluated(trials)
    references = _references(done)
    best = done[:top]
    page = Page(f"optsearch report: {Path(db_path).name}")
    page.sections.append(_summary(db_path, config, trials, samples))
    if not samples:
        page.sections.append(Section("Search progress", ["The database has no sampled rules yet."]))
    else:
        page.sections.append(Section("Controller learning curve", [Image(
            "learning_curve.png", plots.learning_curve_png(learning_curve(samples)), "controller learning curve",
            "Reward of every sampled rule in sampling order (duplicates get their stored reward, rejected rules 0), "
            "with the running mean and the best so far.")]))
        page.sections.append(Section("Unique vs sampled", [Image(
            "unique_vs_sampled.png", plots.kind_counts_png(kind_counts(samples)), "unique vs sampled",
            "New rules are trained; duplicates (same fingerprint) and rejected rules (never trainable) are not.")]))
    if done:
        page.sections.append(Section("Reward histogram", [Image(
            "reward_histogram.png", plots.reward_histogram_png(done, {k: t.reward for k, t in references.items()}),
            "reward histogram")]))
        page.sections.append(_pareto(done))
        page.sections.append(Section(f"Leaderboard (top {len(best)})", [_leaderboard(best)]))
        page.sections.append(_curves(best[:5], references))
    if funnel is not None:
        page.sections += funnel_sections(funnel)
    return write_page(page, out_dir)


def _summary(db_path: str | Path, config: dict, trials: list[Trial], samples: list[Sample]) -> Section:
    status = Counter(t.status for t in trials)
    kinds = Counter(s.kind for s in samples)
    rows: list[list[Cell]] = [["database", Code(str(db_path))]]
    rows += [[key, Code(json.dumps(value))] for key, value in config.items() if value not in (None, {}, [])]
    rows += [["rules sampled", str(len(samples))],
             ["sample kinds", ", ".join(f"{k}: {n}" for k, n in kinds.most_common()) or "none"],
             ["trials by status", ", ".join(f"{k}: {n}" for k, n in status.most_common()) or "none"]]
    done = evaluated(trials)
    if done:
        rows.append(["best rule", [Code(done[0].rule), f"reward {done[0].reward:.4f}"]])
    return Section("Summary", [Table(["item", "value"], rows)])


def _references(done: list[Trial]) -> dict[str, Trial]:
    by_fp = {t.fingerprint: t for t in done}
    found = {name: by_fp.get(parse(text).fingerprint) for name, text in REFERENCES.items()}
    return {name: t for name, t in found.items() if t is not None}


def _pareto(done: list[Trial]) -> Section:
    front = pareto_front(done)
    rows: list[list[Cell]] = [[str(t.complexity), Code(t.rule), f"{t.reward:.4f}"] for t in front]
    return Section("Pareto front: complexity vs reward", [
        Image("pareto.png", plots.pareto_png(done), "Pareto front"),
        Table(["complexity", "rule", "reward"], rows)])


def _leaderboard(best: list[Trial]) -> Table:
    rows: list[list[Cell]] = []
    for rank, t in enumerate(best, 1):
        formula: Cell = "—"
        try:
            latex = parse(t.rule).latex()
        except RuleError:
            latex = None
        if latex is not None:
            png = latex_png(latex)
            formula = [Image(f"rule_{rank}.png", png, latex), Code(latex)] if png else Code(latex)
        lr = "—" if t.best_lr is None else f"{t.best_lr:g}"
        found_by = "baseline" if t.strategy == BASELINE else "search"
        rows.append([str(rank), Code(t.rule), formula, f"{t.reward:.4f}", lr, t.status, str(t.complexity), found_by])
    return Table(["#", "rule", "formula (LaTeX)", "reward", "best lr", "status", "complexity", "from"], rows)


def _curves(top: list[Trial], references: dict[str, Trial]) -> Section:
    missing = [f"{name} (rule `{REFERENCES[name]}`)" for name in REFERENCES if name not in references]
    notes = []
    if missing:
        notes.append(f"Not evaluated in this search, so not plotted: {', '.join(missing)}. "
                     "Evaluate them on the same task to compare.")
    refs_fp = {t.fingerprint for t in references.values()}
    with_curves = [t for t in top if t.curve and t.fingerprint not in refs_fp]
    refs = {name: t for name, t in references.items() if t.curve}
    if not with_curves and not refs:
        return Section("Learning curves", notes + ["The trials stored no learning curves."])
    image = Image("top_curves.png", plots.top_curves_png(with_curves, refs), "learning curves of the top rules",
                  "Validation accuracy during training at each rule's best learning rate.")
    return Section("Learning curves: top rules vs Adam and SGD", [image, *notes])
