"""``spikeverse encode``: encode an image into a spike window and draw its raster (pixels x time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError

# A 5x7 bitmap font for the digits 0-9 (rows top to bottom): the built-in offline example.
_FONT = {
    0: "01110 10001 10011 10101 11001 10001 01110", 1: "00100 01100 00100 00100 00100 00100 01110",
    2: "01110 10001 00001 00010 00100 01000 11111", 3: "11111 00010 00100 00010 00001 10001 01110",
    4: "00010 00110 01010 10010 11111 00010 00010", 5: "11111 10000 11110 00001 00001 10001 01110",
    6: "00110 01000 10000 11110 10001 10001 01110", 7: "11111 00001 00010 00100 01000 01000 01000",
    8: "01110 10001 10001 01110 10001 10001 01110", 9: "01110 10001 10001 01111 00001 00010 01100",
}
ENCODERS = ("poisson", "analog", "bin", "gaussian")


def builtin_digit(n: int) -> np.ndarray:
    """Digit ``n`` of the 5x7 font on an 8x8 canvas, softened (0.6 x stroke + 0.4 x its 3x3 mean)
    so that intensities take several grey levels; values in [0, 1]."""
    if n not in _FONT:
        raise SpikeverseError(f"--digit must be 0-9, got {n}")
    img = np.zeros((8, 8))
    img[1:8, 1:6] = [[float(c) for c in row] for row in _FONT[n].split()]
    padded = np.pad(img, 1)
    box = sum(padded[i:i + 8, j:j + 8] for i in range(3) for j in range(3)) / 9
    soft = 0.6 * img + 0.4 * box
    return soft / soft.max()


def load_image(path: Path) -> np.ndarray:
    """A greyscale image in [0, 1] from a PNG/JPG (matplotlib) or a 2-D .npy array (RGB(A) is
    averaged over colour; values above 1 are divided by the maximum; negatives clip to 0)."""
    if not path.is_file():
        raise SpikeverseError(f"image file not found: {path}")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            import matplotlib.image as mpimg
            arr = mpimg.imread(path)
    except Exception as e:  # unreadable or foreign file
        raise SpikeverseError(f"cannot read image {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(-1)
    if arr.ndim != 2 or arr.size == 0:
        raise SpikeverseError(f"image {path} must be 2-D greyscale or RGB(A), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise SpikeverseError(f"image {path} contains NaN or infinite values")
    if arr.max() > 1:
        arr = arr / arr.max()
    return arr.clip(0, 1)


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
    import torch

    from spikeverse.snn.encoders import AnalogEncoder, PoissonEncoder, PopulationEncoder

    if encoder not in ENCODERS:
        raise SpikeverseError(f"unknown encoder '{encoder}' (choose from {', '.join(ENCODERS)})")
    takes = {"poisson": ("gain", "seed"), "analog": (), "bin": ("bins",), "gaussian": ("bins",)}[encoder]
    stray = [f"--{k}" for k, v in dict(gain=gain, bins=bins, seed=seed).items() if v is not None and k not in takes]
    if stray:
        raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --encoder {encoder}")
    if image is not None and digit is not None:
        raise SpikeverseError("--digit applies without --image only (the built-in example)")
    gain, bins, seed = 1.0 if gain is None else gain, 4 if bins is None else bins, seed or 0
    digit = 3 if digit is None else digit
    img = load_image(image) if image is not None else builtin_digit(digit)
    source = str(image) if image is not None else f"built-in digit {digit}"
    x = torch.as_tensor(img.reshape(1, -1), dtype=torch.float32)  # [B=1, pixels]
    if encoder == "poisson":
        enc = PoissonEncoder(gain=gain, seed=seed)
    elif encoder == "analog":
        enc = AnalogEncoder()
    else:
        enc = PopulationEncoder(n=bins, low=0.0, high=1.0, kind=encoder)
        x = x.unsqueeze(-1)  # every pixel is one variable: [1, pixels, 1] -> [1, pixels, bins]
    window = enc(x, timesteps).reshape(timesteps, -1).numpy()  # [T, neurons]
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
