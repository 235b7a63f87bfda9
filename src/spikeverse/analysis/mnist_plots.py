"""The figures of a spiking MNIST run (``spikeverse mnist``; seed 000 sec. 7.2, Figs. 22-23),
drawn from its ``metrics.csv`` and ``evaluation.json`` into RUN_DIR/figures/:

- ``raster.png``: a test image (the most ambiguous one), its Poisson raster (input pixel x time
  step, the very spikes the network classified) and each pixel's rate against its intensity;
- ``output_counts.png``: the output spike counts per class of a correctly classified test digit
  (the most confident) and of the most ambiguous one (smallest margin between the top two counts);
- ``accuracy.png``: test accuracy per epoch (the converted route: the ANN's too) and the training loss;
- ``accuracy_vs_t.png`` (the converted route): the SNN's test accuracy against T, the ANN's as a line.

Each file is written whole or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeverse.analysis.coding_plots import plot_encoding
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_bytes
from spikeverse.io.rundir import read_metrics, require_config
from spikeverse.mnist.train import KIND, read_evaluation

RASTER = "raster.png"
COUNTS = "output_counts.png"
ACCURACY = "accuracy.png"
ACCURACY_VS_T = "accuracy_vs_t.png"


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def raster_figure(ev: dict, path: Path) -> Path:
    r = ev["raster"]
    image = np.asarray(r["image"], dtype=float)
    window = np.asarray(r["spikes"], dtype=float)
    tmp = path.parent / f".{path.stem}.tmp{path.suffix}"
    try:
        plot_encoding(tmp, image, window, f"Poisson raster of test image {r['index']} (label {r['label']}), "
                                          f"T={window.shape[0]}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def counts_figure(ev: dict, path: Path) -> Path:
    rows = [(k, ev["examples"][k]) for k in ("correct", "ambiguous") if k in ev["examples"]]
    fig = Figure(figsize=(9, 3.2 * len(rows)), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), 2, width_ratios=[1, 3], squeeze=False))
    for (name, e), (ax_img, ax_bar) in zip(rows, axes):
        ax_img.imshow(np.asarray(e["image"]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax_img.set(xticks=[], yticks=[], title=f"test image {e['index']}, label {e['label']}")
        counts = np.asarray(e["counts"])
        colors = ["tab:green" if c == e["label"] else ("tab:red" if c == e["prediction"] else "tab:gray")
                  for c in range(len(counts))]
        ax_bar.bar(np.arange(len(counts)), counts, color=colors)
        ax_bar.set(xticks=np.arange(len(counts)), xlabel="class (output neuron)",
                   ylabel=f"spikes in T={ev['timesteps']}",
                   title=f"{name}: label {e['label']}, predicted {e['prediction']}, margin {e['margin']:g} "
                         f"(green: label{', red: prediction' if e['prediction'] != e['label'] else ''})")
        ax_bar.grid(axis="y", alpha=0.3)
    fig.suptitle(f"output spike counts per class ({ev['method']} route, {ev['dataset']})")
    return _save(fig, path)


def accuracy_figure(rows: list[dict], ev: dict, path: Path) -> Path:
    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.plot(epochs, [100 * float(r["test_accuracy"]) for r in rows], "o-", label=f"SNN test accuracy (T={ev['timesteps']})")
    if rows and rows[0].get("ann_test_accuracy") not in (None, ""):
        ax.plot(epochs, [100 * float(r["ann_test_accuracy"]) for r in rows], "s--", label="ANN test accuracy")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{ev['method']} route on {ev['dataset']}")
    ax.grid(alpha=0.3)
    loss = ax.twinx()
    loss.plot(epochs, [float(r["train_loss"]) for r in rows], color="tab:gray", lw=1, alpha=0.7, label="train loss")
    loss.set_ylabel("train loss")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = loss.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=8)
    return _save(fig, path)


def accuracy_vs_t_figure(ev: dict, path: Path) -> Path:
    curve = ev["accuracy_vs_t"]
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.plot([c["timesteps"] for c in curve], [100 * c["accuracy"] for c in curve], "o-",
            label=f"SNN ({ev['conversion']} conversion, Poisson input)")
    ax.axhline(100 * ev["ann_test_accuracy"], color="k", ls="--", lw=1, label="ANN")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="time steps T", ylabel="test accuracy (%)", title=f"converted route on {ev['dataset']}: accuracy vs T")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def mnist_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of the MNIST run in ``run_dir`` to ``run_dir/figures/``; their paths."""
    run_dir = Path(run_dir)
    cfg = require_config(run_dir)
    if cfg.get("agent") != KIND:
        raise SpikeverseError(f"{run_dir} holds a '{cfg.get('agent') or cfg.get('method')}' run, not an MNIST run")
    ev = read_evaluation(run_dir)
    rows = read_metrics(run_dir)[: ev["epochs"]]
    out = run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = [raster_figure(ev, out / RASTER), counts_figure(ev, out / COUNTS), accuracy_figure(rows, ev, out / ACCURACY)]
    if "accuracy_vs_t" in ev:
        paths.append(accuracy_vs_t_figure(ev, out / ACCURACY_VS_T))
    return paths
