"""Summary statistics of evaluation scores and the comparison of two agents.

``summarize`` gives the mean with a 95% confidence interval from the t distribution;
``compare`` gives Welch's unequal-variance two-sample t-test.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import numpy as np
from scipy import stats

from spikeverse.errors import SpikeverseError


def _as_scores(scores: Iterable[float], name: str) -> np.ndarray:
    x = np.asarray(list(scores), dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise SpikeverseError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise SpikeverseError(f"{name} holds non-finite values")
    return x


def summarize(scores: Iterable[float]) -> dict:
    """n, mean, std, sem, min, max and the 95% CI of the mean of ``scores``.

    std is the sample standard deviation (ddof=1), sem = std / sqrt(n), and the CI is
    mean +- t_{0.975, n-1} * sem. With a single score std, sem and the CI are nan.
    """
    x = _as_scores(scores, "scores")
    n, mean = x.size, float(x.mean())
    if n < 2:
        std = sem = half = math.nan
    else:
        std = float(x.std(ddof=1))
        sem = std / math.sqrt(n)
        half = float(stats.t.ppf(0.975, n - 1)) * sem
    return dict(n=n, mean=mean, std=std, sem=sem, min=float(x.min()), max=float(x.max()),
                ci95_low=mean - half, ci95_high=mean + half)


def compare(scores_a: Iterable[float], scores_b: Iterable[float]) -> dict:
    """Welch's two-sample t-test of B against A (``scipy.stats.ttest_ind(equal_var=False)``).

    t = (mean_b - mean_a) / sqrt(s_a^2 / n_a + s_b^2 / n_b), two-sided p-value with the
    Welch-Satterthwaite degrees of freedom; ratio = mean_b / mean_a (None if mean_a == 0).
    Degenerate inputs: fewer than 2 scores on a side gives t = p = nan; both sides constant gives
    p = 1 when they are equal (t = 0) and p = 0 otherwise (t = +-inf).
    """
    a, b = _as_scores(scores_a, "scores_a"), _as_scores(scores_b, "scores_b")
    mean_a, mean_b = float(a.mean()), float(b.mean())
    if a.size < 2 or b.size < 2:
        t, p = math.nan, math.nan
    elif np.ptp(a) == 0 and np.ptp(b) == 0:
        t = 0.0 if mean_a == mean_b else math.copysign(math.inf, mean_b - mean_a)
        p = 1.0 if mean_a == mean_b else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision note on a constant side
            res = stats.ttest_ind(b, a, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
    return dict(test="welch", n_a=int(a.size), n_b=int(b.size), mean_a=mean_a, mean_b=mean_b,
                diff=mean_b - mean_a, ratio=None if mean_a == 0 else mean_b / mean_a, t=t, p_value=p)
