"""``spikeverse encode``: encode an image into a spike window and draw its raster (pixels x time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError


@app.command()
def encode(
    image: Optional[Path] = typer.Option(None, help="A PNG/JPG or 2-D .npy image (default: the built-in digit)."),
    digit: Optional[int] = typer.Option(None, help="Built-in 8x8 digit (0-9) used when no --image is given.", show_default="3"),
    encoder: str = typer.Option("poisson", help="poisson, analog, bin or gaussian (population coding of intensity)."),
    timesteps: int = typer.Option(20, help="Window length T."),
    gain: Optional[float] = typer.Option(None, help="poisson: spike probability per step = clip(gain * intensity, 0, 1).", show_default="1.0"),
    bins: Optional[int] = typer.Option(None, help="bin/gaussian: neurons per pixel over intensity [0, 1].", show_default="4"),
    seed: Optional[int] = typer.Option(None, help="poisson: seed of the spike trains.", show_default="0"),
    plot: Optional[Path] = typer.Option(None, help="Write the raster figure to this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the window's summary and per-neuron rates as JSON."),
) -> None:
    """Encode an image with an input encoder and show the spike raster (neurons x time)."""
    from spikeverse.io.images import builtin_digit, load_image
    from spikeverse.snn.encoders import ENCODER_OPTIONS, encode_image

    if encoder not in ENCODER_OPTIONS:
        raise SpikeverseError(f"unknown encoder '{encoder}' (choose from {', '.join(ENCODER_OPTIONS)})")
    takes = ENCODER_OPTIONS[encoder]
    stray = [f"--{k}" for k, v in dict(gain=gain, bins=bins, seed=seed).items() if v is not None and k not in takes]
    if stray:
        raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --encoder {encoder}")
    if image is not None and digit is not None:
        raise SpikeverseError("--digit applies without --image only (the built-in example)")
    gain, bins, seed = 1.0 if gain is None else gain, 4 if bins is None else bins, seed or 0
    digit = 3 if digit is None else digit
    img = load_image(image) if image is not None else builtin_digit(digit)
    source = str(image) if image is not None else f"built-in digit {digit}"
    window = encode_image(img, encoder, timesteps, gain=gain, bins=bins, seed=seed)  # [T, neurons]
    if plot is not None:
        from spikeverse.analysis.coding_plots import plot_encoding
        plot_encoding(plot, img, window, f"{encoder} encoding, T={timesteps}")
    rates = window.mean(0)
    summary = {"image": source, "shape": list(img.shape), "encoder": encoder, "timesteps": timesteps,
               "neurons": int(window.shape[1]), "total": float(window.sum()), "mean_rate": float(rates.mean()),
               "plot": str(plot) if plot else None}
    if as_json:
        typer.echo(json.dumps({**summary, "rates": rates.round(4).tolist()}))
    else:
        typer.echo(f"{source} {img.shape[0]}x{img.shape[1]} -> {encoder}: {summary['neurons']} neurons x "
                   f"{timesteps} steps, total {summary['total']:g}, mean rate {summary['mean_rate']:.3f}"
                   + (f"; figure written to {plot}" if plot else ""))
