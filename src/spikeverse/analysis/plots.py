"""Figures (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def learning_curve(steps: Sequence[float], returns: Sequence[float], path: str | Path, *, title: str = "",
                   window: int = 20, evals: tuple[Sequence[float], Sequence[float]] | None = None,
                   xlabel: str = "environment steps", ylabel: str = "return") -> Path:
    """Episode return against environment steps, with a moving average over ``window`` episodes
    and, given ``evals`` = (steps, means), the evaluations made during training."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps, returns = np.asarray(steps, float), np.asarray(returns, float)
    ax.plot(steps, returns, lw=0.6, alpha=0.4, label="episode return")
    if len(returns) >= window:
        avg = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], avg, lw=1.8, label=f"mean of last {window}")
    if evals is not None and len(evals[0]):
        ax.plot(np.asarray(evals[0], float), np.asarray(evals[1], float), "o-", ms=3, lw=1.2, color="tab:red",
                label="evaluation (greedy)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def score_distributions(samples: dict[str, Sequence[float]], path: str | Path, *, title: str = "") -> Path:
    """Histograms of per-episode scores, one per agent (seed 000 Fig. 24: ANN vs SNN)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    allv = np.concatenate([np.asarray(v, float) for v in samples.values()])
    bins = np.linspace(allv.min() - 0.5, allv.max() + 0.5, 21) if len(allv) else 10
    for name, v in samples.items():
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (mean {np.mean(v):.1f})")
    ax.set_xlabel("episode score")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def score_and_agreement_vs_timesteps(points: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Mean score (left axis) and conversion rate (right axis) against T (seed 001 Fig. 1a).

    ``points``: dicts with ``timesteps``, ``mean`` and ``conversion_rate``."""
    T = [p["timesteps"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(T, [p["mean"] for p in points], "o-", color="tab:blue", label="mean score")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("simulation time steps T")
    ax.set_ylabel("mean score", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(T, [p["conversion_rate"] for p in points], "s--", color="tab:orange", label="conversion rate")
    ax2.set_ylabel("conversion rate", color="tab:orange")
    ax2.set_ylim(0, 1.02)
    ax.set_title(title)
    return _save(fig, path)


def curves_with_seed_bands(curves: dict[str, list[list[tuple[float, float]]]], path: str | Path, *,
                           title: str = "", xlabel: str = "frames", ylabel: str = "evaluation mean") -> Path:
    """One line per agent: the mean over seeds of its (x, y) curves at the x they share, and a
    band from the lowest to the highest seed (a multi-game study's learning curves)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        x = np.asarray([p[0] for p in runs[0][:n]], float)
        y = np.asarray([[p[1] for p in r[:n]] for r in runs], float)
        line, = ax.plot(x, y.mean(0), lw=1.5, label=f"{name} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.2, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # runs stopped before their first evaluation draw nothing
        ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def intervals(points: dict[str, tuple[float, float | None, float | None]], path: str | Path, *, title: str = "",
              xlabel: str = "", reference: float | None = None) -> Path:
    """A point and its 95% interval per row (name -> (point, low, high)); ``reference``: a
    vertical line (e.g. 1 for DQN-normalized scores)."""
    names = list(points)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(names)))
    for i, name in enumerate(names):
        p, lo, hi = points[name]
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [i, i], lw=4, alpha=0.5, color="tab:blue")
        ax.plot([p], [i], "o", color="tab:blue")
    if reference is not None:
        ax.axvline(reference, color="gray", lw=1, ls="--")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _save(fig, path)
