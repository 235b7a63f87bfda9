"""Figures of an evolve run (seed 002 sec. 3.3.3): the fitness of every individual per
generation (Fig. 12), the spike counts of each output neuron in one 20 ms window over the
(position, velocity) plane (Figs. 13-15), and an episode of the best network: position,
velocity and the output neurons' firing rates (Fig. 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spikeverse.analysis.plots import _save, plt
from spikeverse.evo import es, ga
from spikeverse.models.mountaincar_snn import HIGH, LOW, MountainCarSNN

FIGURES = ("fitness.png", "output_heatmaps.png", "episode.png")
NEURON_NAMES = ("neuron 1 (left)", "neuron 2 (no push)", "neuron 3 (right)")


def fitness_per_individual(history: np.ndarray, path: str | Path, *, target: float | None = None,
                           title: str = "", ylabel: str = "fitness (max position)",
                           lines: dict[str, Sequence[float]] | None = None) -> Path:
    """Every individual's fitness against its running number g N + i (dots, seed 002 Fig. 12),
    with each generation's best and mean and any other per-generation ``lines`` (at the
    generation's middle individual). ``history``: [generations, N]."""
    h = np.asarray(history, dtype=float)
    g, n = h.shape
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.scatter(np.arange(g * n), h.reshape(-1), s=6, alpha=0.5, color="tab:blue", label="individual")
    mid = np.arange(g) * n + n / 2
    ax.plot(mid, h.max(1), "o-", ms=3, color="tab:red", label="best of generation")
    ax.plot(mid, h.mean(1), "s--", ms=3, color="tab:orange", label="mean of generation")
    for (name, ys), color in zip((lines or {}).items(), ("tab:green", "tab:purple", "tab:brown")):
        ax.plot(mid, np.asarray(ys, dtype=float), "^-", ms=3, color=color, label=name)
    if target is not None:
        ax.axhline(target, color="k", lw=1, ls=":", label=f"target {target:g}")
    ax.set_xlabel(f"individual (generation x {n} + index)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def output_heatmaps(counts: np.ndarray, low: Sequence[float], high: Sequence[float], path: str | Path, *,
                    window_ms: float = 20.0, names: Sequence[str] = NEURON_NAMES) -> Path:
    """One heatmap per output neuron of its spike count in one window, over the (position,
    velocity) bins (seed 002 Figs. 13-15). ``counts``: [position bins, velocity bins, outputs];
    ``low``/``high``: (position, velocity) bounds."""
    c = np.asarray(counts, dtype=float)
    k = c.shape[-1]
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.6), squeeze=False)
    extent = (low[0], high[0], low[1], high[1])
    vmax = max(c.max(), 1.0)
    for j, ax in enumerate(axes[0]):
        im = ax.imshow(c[..., j].T, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=vmax, cmap="inferno")
        ax.set_title(names[j] if j < len(names) else f"neuron {j + 1}")
        ax.set_xlabel("position")
        ax.set_ylabel("velocity")
        fig.colorbar(im, ax=ax, label=f"spikes in {window_ms:g} ms")
    return _save(fig, path)


def episode_recording(position: np.ndarray, velocity: np.ndarray, rates_hz: np.ndarray, path: str | Path, *,
                      goal: float | None = 0.5, names: Sequence[str] = NEURON_NAMES, title: str = "") -> Path:
    """Position, velocity and the output neurons' firing rates (Hz) per environment step
    (seed 002 Fig. 16). ``position``/``velocity``: [steps + 1] (the start first, NaN after the
    end); ``rates_hz``: [steps, outputs]."""
    pos, vel, rates = (np.asarray(a, dtype=float) for a in (position, velocity, rates_hz))
    fig, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    t = np.arange(len(pos))
    axes[0].plot(t, pos, color="tab:blue")
    if goal is not None:
        axes[0].axhline(goal, color="k", lw=1, ls=":", label=f"goal {goal:g}")
        axes[0].legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("position")
    axes[1].plot(t, vel, color="tab:green")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylabel("velocity")
    live = ~np.isnan(pos[1:])
    for j in range(rates.shape[1]):
        axes[2].step(np.arange(1, len(pos))[live], rates[live, j], where="post",
                     label=names[j] if j < len(names) else f"neuron {j + 1}")
    axes[2].set_ylabel("firing rate (Hz)")
    axes[2].set_xlabel("environment step")
    axes[2].legend(fontsize=8, loc="upper right")
    axes[0].set_title(title)
    return _save(fig, path)


def evolve_figures(run_dir: str | Path) -> list[Path]:
    """The three figures of a Mountain Car evolve run into ``run_dir/figures/``: the fitness
    history, the best network's output heatmaps and its episode from the start state it was
    scored on."""

    run_dir = Path(run_dir)
    cfg, ga_run = ga.load_run(run_dir)
    net = MountainCarSNN.from_dict(cfg["network"])
    figs = run_dir / "figures"
    history = np.stack(ga_run.history.fitness)
    seed = cfg["ga"]["seed"]
    paths = [fitness_per_individual(history, figs / FIGURES[0], target=cfg["ga"].get("target"),
                                    title=f"{cfg['env']}, GA, seed {seed}")]
    counts = net.response_table(ga_run.best)[0].numpy()
    paths.append(output_heatmaps(counts, LOW, HIGH, figs / FIGURES[1], window_ms=net.window_ms))
    rec = net.rollout(ga_run.best, [net.reset_seed(seed, ga_run.best_generation, ga_run.best_index)], record=True)
    rates = rec["counts"][0] * (1000.0 / net.window_ms)
    paths.append(episode_recording(rec["position"][0], rec["velocity"][0], rates, figs / FIGURES[2],
                                   title=f"best network (fitness {float(rec['fitness'][0]):.3f})"))
    return paths


def es_figures(run_dir: str | Path) -> list[Path]:
    """The fitness history of a CartPole ES run into ``run_dir/figures/fitness.png``: every
    individual, each generation's best and mean, and the mean weights' evaluation."""
    run_dir = Path(run_dir)
    cfg, es_run = es.load_run(run_dir)
    es_cfg, history = cfg["es"], es_run.history
    return [fitness_per_individual(np.stack(history.fitness), run_dir / "figures" / FIGURES[0], target=es_cfg.get("target"),
                                   title=f"{cfg['env']}, ES, seed {es_cfg['seed']}",
                                   ylabel="fitness (mean episode length)",
                                   lines={"mean weights": [r["mean_weights"] for r in history.rows]})]
