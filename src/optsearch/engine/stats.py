"""The statistics under the funnel's verdicts: paired tests over seeds, Holm's adjustment, rank correlation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
"""A rule beats (loses to) the best baseline when its Holm-adjusted p is below this and its gap is positive
(negative); otherwise it ties."""


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN with fewer than three pairs, a missing value, or a constant side."""
    if len(x) < 3 or any(math.isnan(v) for v in [*x, *y]) or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> np.ndarray:
    """a − b on each seed both have, in seed order: what the paired test, its interval and its power work on."""
    return np.array([a[s] - b[s] for s in sorted(set(a) & set(b))], dtype=float)


def paired_p(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    """Two-sided paired t-test over the seeds both have (same seed: same init and minibatches), as
    `scipy.stats.ttest_rel`; NaN with fewer than two. Differences equal on every seed give p 1 when they are
    zero and 0 otherwise (the t statistic is infinite). With n seeds the test has n − 1 degrees of freedom and
    assumes roughly normal differences; with 3 seeds only a large, consistent gap reaches significance."""
    d = paired_differences(a, b)
    if len(d) < 2:
        return math.nan
    spread = float(np.std(d, ddof=1))
    if spread == 0.0:
        return 1.0 if not d.any() else 0.0
    t = float(d.mean()) / (spread / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest of m p-values is multiplied by m − k + 1, kept monotone and
    at most 1, so the chance of any false verdict among a task's rules stays below ALPHA. NaNs stay NaN and do not
    count toward m."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * p))
        adjusted[i] = running
    return adjusted


def verdict(gap: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """beats / loses when the adjusted p is below `alpha` (by the gap's sign); ties otherwise."""
    if math.isnan(p_adjusted) or math.isnan(gap):
        return "incomplete"
    if p_adjusted < alpha and gap != 0:
        return "beats" if gap > 0 else "loses"
    return "ties"


POWER = 0.8
"""The power at which a table's detectable gap is quoted."""


def detectable_gap(spread: float, n: int, rules: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean gap a two-sided paired t-test over `n` seeds detects with probability `power`, when
    the per-seed differences have standard deviation `spread` and the level is Holm's strictest, alpha / `rules`
    (the level the best-looking of `rules` rules must clear): what a "ties" leaves room for. Exact, from the
    noncentral t: the test rejects when |T| > t_crit with T ~ t'(n − 1, gap·√n / spread). NaN with fewer than two
    seeds or a NaN spread; 0 when the spread is 0 (any gap then shows on every seed)."""
    if n < 2 or math.isnan(spread) or rules < 1:
        return math.nan
    if spread == 0.0:
        return 0.0
    df, level = n - 1, alpha / rules
    crit = float(stats.t.ppf(1 - level / 2, df))

    def shortfall(nc: float) -> float:
        return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc)) - power  # nct.cdf can be NaN far out

    hi = crit + 1.0
    while shortfall(hi) < 0:
        hi *= 2
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-10)) * spread / math.sqrt(n)
