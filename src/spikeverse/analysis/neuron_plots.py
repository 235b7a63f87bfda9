"""Membrane-trace figures (seed 002 Fig. 8 style), drawn with matplotlib's Agg canvas so that
no GUI backend is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_membrane_traces(t: Sequence[float], traces: dict[str, Sequence[float]],
                         spikes: dict[str, Sequence[float]], path: Path, *,
                         v_th: Optional[float] = None, title: str = "",
                         unit: str = "mV") -> Path:
    """One panel per neuron: its membrane trace over ``t`` (ms), its spike times as markers
    above the trace, the threshold ``v_th`` dashed; written as a PNG to ``path``."""
    fig = Figure(figsize=(9, 2.2 * len(traces) + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(traces), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, v) in zip(axes, traces.items()):
        ax.plot(t, v, lw=0.8, color="tab:blue")
        top = max(max(v), v_th) if v_th is not None else max(v)
        times = spikes.get(name, [])
        ax.plot(times, [top] * len(times), "|", color="tab:red", ms=10, mew=1.5,
                label=f"{len(times)} spikes")
        if v_th is not None:
            ax.axhline(v_th, ls="--", lw=0.7, color="gray")
        ax.set_ylabel(f"{name} V_m ({unit})" if unit else f"{name} v")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (ms)")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
