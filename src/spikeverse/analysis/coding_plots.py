"""Figures for neural coding: surrogate functions and derivatives (seed 000 Figs. 20-21) and
spike rasters of encoded inputs. Figures are drawn on matplotlib's Agg canvas (no display, no
pyplot state) and written to a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from spikeverse.snn.surrogates import SURROGATES, surrogate


def surrogate_curves(x: np.ndarray) -> dict[str, dict]:
    """For every surrogate at its default parameter: its parameter, g(x) and g'(x) on ``x``."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    out = {}
    for name, spec in SURROGATES.items():
        s = surrogate(name)
        out[name] = {"param": spec.param, "value": s.alpha, "formula": spec.formula, "source": spec.source,
                     "primitive": s.primitive(xt).numpy(), "derivative": s.derivative(xt).numpy()}
    return out


def plot_surrogates(path: str | Path, x_min: float = -3.0, x_max: float = 3.0, points: int = 601) -> Path:
    """Two panels: the smooth steps g(x) against H(x), and the surrogate derivatives g'(x)."""
    x = np.linspace(x_min, x_max, points)
    curves = surrogate_curves(x)
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_g, ax_d = fig.subplots(1, 2)
    ax_g.step(x, (x >= 0).astype(float), where="post", color="k", ls="--", lw=1, label="H(x)")
    for name, c in curves.items():
        label = f"{name} ({c['param']}={c['value']:g})"
        ax_g.plot(x, c["primitive"], lw=1.4, label=label)
        ax_d.plot(x, c["derivative"], lw=1.4, label=label)
    ax_g.set(title="smooth steps g(x) (forward uses H)", xlabel="x = v - v_th", ylabel="g(x)")
    ax_d.set(title="surrogate derivatives g'(x) (backward)", xlabel="x = v - v_th", ylabel="g'(x)")
    ax_g.legend(fontsize=7, loc="upper left")
    for ax in (ax_g, ax_d):
        ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_encoding(path: str | Path, image: np.ndarray, window: np.ndarray, title: str) -> Path:
    """The input image, the raster of the encoded window ([T, N] -> neurons x time), and, when
    there is one neuron per pixel, each pixel's firing rate against its intensity (seed 000:
    brighter pixel, more spikes)."""
    T, N = window.shape
    per_pixel = N == image.size
    fig = Figure(figsize=(13 if per_pixel else 9, 4.8), layout="constrained")
    axes = fig.subplots(1, 3 if per_pixel else 2, width_ratios=[1, 2, 1.2] if per_pixel else [1, 2])
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set(title=f"input {image.shape[0]}x{image.shape[1]}", xticks=[], yticks=[])
    im = axes[1].imshow(window.T, aspect="auto", cmap="gray_r", vmin=0, vmax=max(1.0, float(window.max())),
                        interpolation="nearest", extent=(-0.5, T - 0.5, N - 0.5, -0.5))
    ylabel = "neuron = pixel (row-major)" if per_pixel else f"neuron (pixel-major, {N // image.size} per pixel)"
    axes[1].set(title=title, xlabel="time step", ylabel=ylabel)
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    if per_pixel:
        axes[2].scatter(image.reshape(-1), window.mean(0), s=12)
        axes[2].plot([0, 1], [0, 1], "k--", lw=1)
        axes[2].set(title="rate vs intensity", xlabel="pixel intensity", ylabel="mean over time", xlim=(-0.05, 1.05))
        axes[2].grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
