"""Aggregates over games with honest intervals (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice", the methods of the ``rliable`` package), on ``scipy.stats.bootstrap``.

Scores are arrays [runs, games] (a run: one training seed). Normalized score of a run on a game:
(x - random) / (reference - random), here with the DQN's mean over seeds as the reference, so the
DQN's own normalized scores average 1.

- ``iqm``: the interquartile mean of all runs x games (the mean of the middle 50%), robust to
  outlier runs and games, less noisy than the median.
- ``probability_of_improvement``: P(X > Y) for a run X of one agent and a run Y of another on the
  same game (ties count half; the Mann-Whitney U / (n m)), averaged over games.
- Stratified bootstrap: runs are resampled with replacement within each game (each game's column
  is one independent sample of ``scipy.stats.bootstrap``), percentile 95% intervals, as rliable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

RESAMPLES = 5_000


def normalize(scores: np.ndarray, random: Sequence[float], reference: Sequence[float]) -> np.ndarray:
    """(scores - random) / (reference - random), per game (the last axis); a game whose reference
    equals its random score is NaN (nothing to normalize by)."""
    lo, hi = np.asarray(random, float), np.asarray(reference, float)
    span = np.where(hi - lo == 0, np.nan, hi - lo)
    return (np.asarray(scores, float) - lo) / span


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean (25% trimmed at each end) of the flattened scores, or along ``axis``."""
    x = np.asarray(scores, float)
    return stats.trim_mean(x.ravel() if axis is None else x, 0.25, axis=axis)


def _iqm_of_games(*games: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(np.concatenate(games, axis=axis), 0.25, axis=axis)


def iqm_interval(scores: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float | None]:
    """IQM of [runs, games] with its stratified-bootstrap 95% interval (None with one run per game)."""
    x = np.asarray(scores, float)
    point = float(iqm(x))
    if x.shape[0] < 2:
        return dict(iqm=point, ci95_low=None, ci95_high=None)
    res = stats.bootstrap(tuple(x[:, g] for g in range(x.shape[1])), _iqm_of_games, n_resamples=resamples,
                          method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    return dict(iqm=point, ci95_low=float(res.confidence_interval.low), ci95_high=float(res.confidence_interval.high))


def _p_improve(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over the runs of one game (the last axis)."""
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(x: np.ndarray, y: np.ndarray, *, resamples: int = RESAMPLES,
                               seed: int = 0) -> dict[str, float | None]:
    """P(X > Y) averaged over games for [runs, games] arrays of two agents, with its stratified
    bootstrap 95% interval (each agent's runs resampled within each game)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    games = x.shape[1]
    point = float(np.mean([_p_improve(x[:, g], y[:, g]) for g in range(games)]))
    if min(x.shape[0], y.shape[0]) < 2:
        return dict(probability=point, ci95_low=None, ci95_high=None)

    def statistic(*cols, axis=-1):
        return np.mean([_p_improve(cols[g], cols[games + g]) for g in range(games)], axis=0)

    samples = tuple(x[:, g] for g in range(games)) + tuple(y[:, g] for g in range(games))
    res = stats.bootstrap(samples, statistic, n_resamples=resamples, method="percentile", vectorized=True,
                          random_state=np.random.default_rng(seed))
    return dict(probability=point, ci95_low=float(res.confidence_interval.low),
                ci95_high=float(res.confidence_interval.high))
