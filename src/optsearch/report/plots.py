"""PNG plots for the reports, drawn with matplotlib's object API (no pyplot: no global state, no display needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from optsearch.engine.store import Trial
from optsearch.report.series import SAMPLE_KINDS, LearningCurve, curve_points, pareto_front

KIND_STYLE = {"new": ("tab:blue", "o"), "duplicate": ("0.6", "."), "rejected": ("tab:red", "x")}
VERDICT_STYLE = {"beats": ("tab:green", "o"), "ties": ("tab:gray", "o"), "loses": ("tab:red", "o"),
                 "incomplete": ("0.8", "o"), "best baseline": ("black", "D"), "baseline": ("black", "s")}
"""Colour and marker of a funnel entry by its verdict: found rules green / grey / red, baselines black."""
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P")
SERIES_LINESTYLES = ("-", "--", ":", "-.")
DPI = 100


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _axes(width: float = 8.0, height: float = 4.2, integer_x: bool = False):
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.grid(alpha=0.3)
    if integer_x:  # counts and sizes: no ticks at 2.5 rules
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def learning_curve_png(curve: LearningCurve) -> bytes:
    """Reward of each sampled rule against the number sampled, with running mean and best (the paper's Fig. 4)."""
    fig, ax = _axes(integer_x=True)
    kinds = np.array(curve.kind)
    for kind in SAMPLE_KINDS:
        sel = kinds == kind
        if sel.any():
            color, marker = KIND_STYLE[kind]
            ax.scatter(curve.n[sel], curve.reward[sel], s=10, c=color, marker=marker, alpha=0.5,
                       label=f"{kind} ({sel.sum()})")
    ax.plot(curve.n, curve.running_mean, color="black", lw=2, label=f"running mean ({curve.window})")
    ax.plot(curve.n, curve.best, color="tab:green", lw=2, label="best so far")
    ax.set(xlabel="rules sampled", ylabel="reward", title="Controller learning curve")
    ax.legend(loc="best", fontsize=8)
    return to_png(fig)


def reward_histogram_png(trials: Sequence[Trial], references: Mapping[str, float]) -> bytes:
    """Rewards of the evaluated rules; dashed lines mark reference optimizers (Adam, SGD) where the db has them."""
    fig, ax = _axes()
    rewards = [t.reward for t in trials]
    ax.hist(rewards, bins=min(40, max(5, len(rewards) // 3)), color="tab:blue", alpha=0.8)
    for (name, reward), color in zip(references.items(), ("tab:red", "tab:orange", "tab:purple"), strict=False):
        ax.axvline(reward, color=color, ls="--", lw=2, label=f"{name} ({reward:.3f})")
    if references:
        ax.legend(fontsize=8)
    ax.set(xlabel="reward", ylabel="rules", title=f"Reward histogram ({len(rewards)} rules)")
    return to_png(fig)


def kind_counts_png(counts: Mapping[str, np.ndarray]) -> bytes:
    """New (unique) rules against rules sampled: the gap is what deduplication saved."""
    fig, ax = _axes(integer_x=True)
    n = np.arange(1, len(next(iter(counts.values()))) + 1)
    ax.plot(n, n, color="0.7", ls="--", label="sampled")
    for kind in SAMPLE_KINDS:
        ax.plot(n, counts[kind], color=KIND_STYLE[kind][0], lw=2, label=kind if kind != "new" else "unique (new)")
    ax.set(xlabel="rules sampled", ylabel="count", title="Unique rules vs rules sampled")
    ax.legend(fontsize=8)
    return to_png(fig)


def pareto_png(trials: Sequence[Trial]) -> bytes:
    """Complexity (expression nodes) against reward; the front holds the best rule of each size or smaller."""
    fig, ax = _axes(8.0, 4.8, integer_x=True)
    ax.scatter([t.complexity for t in trials], [t.reward for t in trials], s=14, c="0.6", alpha=0.6, label="rules")
    front = pareto_front(trials)
    ax.step([t.complexity for t in front], [t.reward for t in front], where="post", color="tab:red", lw=2,
            marker="o", label="Pareto front")
    for t in front:
        ax.annotate(_short(t.rule), (t.complexity, t.reward), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set(xlabel="complexity (expression nodes)", ylabel="reward",
           title="Pareto front: complexity vs reward")
    ax.legend(loc="lower right", fontsize=8)
    return to_png(fig)


def top_curves_png(top: Sequence[Trial], references: Mapping[str, Trial]) -> bytes:
    """Validation accuracy during training, at each rule's best learning rate, for the top rules and references."""
    fig, ax = _axes()
    for t in top:
        x, y = curve_points(t)
        ax.plot(x, y, lw=1.5, marker=".", label=_short(t.rule))
    for (name, t), color in zip(references.items(), ("black", "0.45", "tab:brown"), strict=False):
        x, y = curve_points(t)
        ax.plot(x, y, lw=2.5, ls="--", color=color, label=f"{name} (reference)")
    ax.set(xlabel="training step", ylabel="validation accuracy", title="Learning curves at the best learning rate")
    ax.legend(fontsize=7, loc="best")
    return to_png(fig)


def benchmark_curves_png(curves: Mapping[str, Mapping[str, np.ndarray]], metric: str, lower_is_better: bool) -> bytes:
    """Per optimizer at its chosen lr: train loss and validation metric by epoch, mean ± std over seeds."""
    fig = Figure(figsize=(11, 4.2))
    loss_ax, val_ax = fig.subplots(1, 2)
    for k, (name, c) in enumerate(curves.items()):
        for ax, key in ((loss_ax, "train_loss"), (val_ax, "val")):
            mean, std = c[f"{key}_mean"], c[f"{key}_std"]
            line, = ax.plot(c["epoch"], mean, ms=4, label=name, **series_style(k))
            ax.fill_between(c["epoch"], mean - std, mean + std, color=line.get_color(), alpha=0.15)
    loss_ax.set(xlabel="epoch", ylabel="train loss (cross-entropy)", title="Train loss")
    val_ax.set(xlabel="epoch", ylabel=f"validation {metric}",
               title=f"Validation {metric} ({'lower' if lower_is_better else 'higher'} is better)")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    val_ax.legend(fontsize=7)
    return to_png(fig)


def lr_sensitivity_png(per_lr: Mapping[str, tuple[Sequence[float], Sequence[float]]], metric: str,
                       lower_is_better: bool) -> bytes:
    """Mean best validation metric against learning rate, one line per optimizer: how forgiving each one is.
    Perplexity spans orders of magnitude across the grid, so it gets a log axis."""
    fig, ax = _axes()
    for k, (name, (lrs, values)) in enumerate(per_lr.items()):
        ax.plot(lrs, values, label=name, **series_style(k))
    ax.set(xscale="log", yscale="log" if lower_is_better else "linear", xlabel="learning rate",
           ylabel=f"best validation {metric} (mean over seeds)", title="Learning-rate sensitivity")
    ax.legend(fontsize=7)
    return to_png(fig)


def winners_curse_png(points: Sequence[tuple[str, float, float, float]], rho: float,
                      best_baseline: tuple[str, float] | None) -> bytes:
    """Stage-1 reward (the search's, one seed) against the stage-2 mean (fresh seeds, ± sem) of each re-scored rule:
    points far below the diagonal trend were lucky in the search."""
    fig, ax = _axes(8.0, 4.8)
    for k, (name, stage1, mean, sem) in enumerate(points):
        ax.errorbar(stage1, mean, yerr=0.0 if math.isnan(sem) else sem, fmt="o", color="tab:blue", ms=5, capsize=3)
        if k < 5:  # the best five of stage 2 (points come best first); more labels would only overlap
            ax.annotate(_short(name, 28), (stage1, mean), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if best_baseline is not None:
        name, mean = best_baseline
        ax.axhline(mean, color="tab:red", ls="--", lw=1.5, label=f"best baseline: {name} ({mean:.3f})")
        ax.legend(loc="lower right", fontsize=8)
    rho_text = "n/a" if math.isnan(rho) else f"{rho:.2f}"
    ax.set(xlabel="stage 1: search reward (validation, search seed)",
           ylabel="stage 2: mean test score (fresh seeds)", title=f"Winner's curse: Spearman ρ = {rho_text}")
    return to_png(fig)


def series_style(k: int) -> dict[str, object]:
    """The line style of the k-th optimizer of a benchmark plot: ten colours, then the colours again with the next
    marker and line style, so no two of 120 optimizers look alike (matplotlib's cycle repeats after ten)."""
    colours = colormaps["tab10"].colors
    turn = k // len(colours)
    return {"color": colours[k % len(colours)], "marker": SERIES_MARKERS[turn % len(SERIES_MARKERS)],
            "linestyle": SERIES_LINESTYLES[turn % len(SERIES_LINESTYLES)]}


def forest_png(rows: Sequence[tuple[str, float, float, str]], title: str, xlabel: str) -> bytes:
    """One row per (label, gap, interval half-width, verdict), drawn top to bottom: each rule's gap to the best
    baseline with its interval, coloured by verdict, against the dashed line of the best baseline at 0."""
    fig, ax = _axes(8.0, 1.3 + 0.3 * len(rows))
    ys = np.arange(len(rows))[::-1]
    for y, (_, gap, half, verdict) in zip(ys, rows, strict=True):
        colour, marker = VERDICT_STYLE[verdict]
        ax.errorbar(gap, y, xerr=None if math.isnan(half) else half, fmt=marker, color=colour, ms=6, capsize=3,
                    lw=1.5)
    ax.axvline(0.0, color="black", ls="--", lw=1)
    ax.set_yticks(ys, [_short(label, 48) for label, *_ in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(False, axis="y")
    shown = dict.fromkeys(verdict for *_, verdict in rows)
    ax.legend(handles=[Line2D([], [], color=VERDICT_STYLE[v][0], marker=VERDICT_STYLE[v][1], ls="none", label=v)
                       for v in VERDICT_STYLE if v in shown], fontsize=8, loc="best")
    ax.set(xlabel=xlabel, title=title)
    return to_png(fig)


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
