"""Figures of the robustness study (``study.robustness``): score and agreement against the
perturbation's strength, one panel per perturbation, one line per agent (95% CI band)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikeverse.analysis.plots import _save, plt


def robustness_figures(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """score_vs_strength.png and agreement_vs_strength.png in ``out_dir``."""
    rows = [r for r in results["rows"] if r["kind"] != "clean"]
    kinds = list(dict.fromkeys((r["kind"], r["mode"]) for r in rows))
    names = {i: f"{i}: {Path(a).name}" for i, a in enumerate(results["config"]["agents"])}
    paths = []
    for what, ylabel in (("mean", "score"), ("agreement", "agreement with the reference")):
        fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
        for ax, (kind, mode) in zip(axes[0], kinds):
            for i, name in names.items():
                pts = sorted((r for r in rows if r["agent"] == i and (r["kind"], r["mode"]) == (kind, mode)),
                             key=lambda r: r["strength"])
                x = [r["strength"] for r in pts]
                y = [np.nan if r[what] is None else r[what] for r in pts]
                ax.plot(x, y, marker="o", label=name)
                if what == "mean":
                    ax.fill_between(x, [r["ci95_low"] for r in pts], [r["ci95_high"] for r in pts], alpha=0.2)
            ax.set_title(f"{kind} ({mode})")
            ax.set_xlabel("strength")
            ax.set_ylabel(ylabel)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(results["config"]["env"])
        paths.append(_save(fig, Path(out_dir) / f"{'score' if what == 'mean' else 'agreement'}_vs_strength.png"))
    return paths
