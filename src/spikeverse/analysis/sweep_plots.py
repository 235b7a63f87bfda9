"""Figures of the conversion sweep (seed 001 Fig. 1): score and conversion rate against the
simulation length T, one line per percentile and a panel pair per readout (Fig. 1a/b), and
score against conversion rate with Pearson's r (Fig. 1c)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from spikeverse.analysis.plots import _save, plt


def _readouts(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(w["readout"] for w in rows))


def score_cr_vs_timesteps(rows: Sequence[dict], path: str | Path, *, dqn_mean: float | None = None,
                          title: str = "") -> Path:
    """Mean score (top) and conversion rate (bottom) against T (log scale), one line per
    percentile, one column per readout; the DQN's mean score as a dashed line.

    ``rows``: dicts with ``readout``, ``percentile``, ``timesteps``, ``mean`` and ``conversion_rate``."""
    rs = _readouts(rows)
    fig, axes = plt.subplots(2, len(rs), figsize=(4.2 * len(rs), 6), sharex=True, sharey="row", squeeze=False)
    for j, r in enumerate(rs):
        mine = [w for w in rows if w["readout"] == r]
        for p in sorted({w["percentile"] for w in mine}):
            pts = sorted((w for w in mine if w["percentile"] == p), key=lambda w: w["timesteps"])
            T = [w["timesteps"] for w in pts]
            axes[0, j].plot(T, [w["mean"] for w in pts], "o-", ms=4, label=f"p = {p:g}")
            axes[1, j].plot(T, [w["conversion_rate"] for w in pts], "o-", ms=4, label=f"p = {p:g}")
        if dqn_mean is not None:
            axes[0, j].axhline(dqn_mean, color="k", ls="--", lw=1, label="DQN")
        axes[0, j].set_title(f"{r} readout")
        axes[1, j].set_xscale("log", base=2)
        axes[1, j].set_xlabel("simulation time steps T")
    low = min([0.5] + [w["conversion_rate"] for w in rows if w["conversion_rate"] is not None])
    axes[1, 0].set_ylim(max(0.0, low - 0.05), 1.02)  # the row shares its y axis
    axes[0, 0].set_ylabel("mean score")
    axes[1, 0].set_ylabel("conversion rate")
    axes[0, -1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def score_vs_conversion_rate(rows: Sequence[dict], pearson: dict[str, dict[str, Any]], path: str | Path, *,
                             title: str = "") -> Path:
    """Mean score against conversion rate, one point per setting and a colour per readout;
    Pearson's r per readout (``pearson[readout]['r']``, None when undefined) in the title."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    parts = []
    for r in _readouts(rows):
        mine = [w for w in rows if w["readout"] == r]
        ax.scatter([w["conversion_rate"] for w in mine], [w["mean"] for w in mine], s=22, alpha=0.8, label=r)
        c = pearson.get(r, {})
        parts.append(f"{r} {c['r']:.2f}" if c.get("r") is not None else f"{r} undefined")
    if pearson.get("all", {}).get("r") is not None:
        parts.append(f"all {pearson['all']['r']:.2f}")
    ax.set_xlabel("conversion rate")
    ax.set_ylabel("mean score")
    ax.legend(fontsize=8, loc="best")
    ax.set_title((f"{title}\n" if title else "") + "Pearson r of score and CR: " + ", ".join(parts), fontsize=10)
    return _save(fig, path)
