"""Figures for plasticity: the pair STDP window (seed 000 Fig. 18) and the trace/weight evolution
of NEST's stdp_synapse rule (seed 002 Fig. 9). Figures are drawn on matplotlib's Agg canvas (no
display, no pyplot state) and written to a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeverse.snn.plasticity import PairSTDP, TraceSTDPRun


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_stdp_window(path: str | Path, dt_spike: np.ndarray, dw: np.ndarray, rule: PairSTDP) -> Path:
    """W(dt) against dt = t_post - t_pre: potentiation (dt > 0) and depression (dt < 0) branches."""
    dt_spike, dw = np.asarray(dt_spike), np.asarray(dw)
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    for mask, color, label in ((dt_spike > 0, "tab:red", "LTP: pre before post"),
                               (dt_spike < 0, "tab:blue", "LTD: post before pre")):
        ax.plot(dt_spike[mask], dw[mask], color=color, lw=1.8, label=label)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set(title=f"STDP window (A+ {rule.a_plus:g}, A- {rule.a_minus:g}, "
                 f"tau+ {rule.tau_plus:g} ms, tau- {rule.tau_minus:g} ms)",
           xlabel="dt = t_post - t_pre (ms)", ylabel="weight change dw")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_trace_stdp(path: str | Path, run: TraceSTDPRun) -> Path:
    """Three panels over time: the pre trace, the post trace (spikes as ticks) and the weight."""
    t = run.t.numpy()
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    ax_pre, ax_post, ax_w = fig.subplots(3, 1, sharex=True)
    for ax, trace, spikes, name, color in ((ax_pre, run.k_pre, run.pre_spikes, "pre-synaptic trace K_pre", "tab:green"),
                                           (ax_post, run.k_post, run.post_spikes, "post-synaptic trace K_post",
                                            "tab:purple")):
        ax.plot(t, trace.numpy(), color=color, lw=1.2)
        ax.plot(t[spikes.numpy() > 0], np.zeros(int(spikes.sum())), "|", color="k", ms=8)
        ax.set(title=name, ylabel="trace")
        ax.grid(alpha=0.3)
    ax_w.plot(t, run.w.numpy(), color="tab:orange", lw=1.4)
    ax_w.set(title=f"synaptic weight (Wmin {run.rule.wmin:g}, Wmax {run.rule.wmax:g}, lambda {run.rule.lam:g})",
             xlabel="time (ms)", ylabel="w")
    ax_w.grid(alpha=0.3)
    return _save(fig, path)
