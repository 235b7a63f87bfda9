"""Greyscale images for the input encoders: a file (PNG/JPG or a 2-D .npy array) or the built-in
offline example, a digit of a 5x7 bitmap font."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from spikeverse.errors import SpikeverseError

# A 5x7 bitmap font for the digits 0-9 (rows top to bottom): the built-in offline example.
_FONT = {
    0: "01110 10001 10011 10101 11001 10001 01110", 1: "00100 01100 00100 00100 00100 00100 01110",
    2: "01110 10001 00001 00010 00100 01000 11111", 3: "11111 00010 00100 00010 00001 10001 01110",
    4: "00010 00110 01010 10010 11111 00010 00010", 5: "11111 10000 11110 00001 00001 10001 01110",
    6: "00110 01000 10000 11110 10001 10001 01110", 7: "11111 00001 00010 00100 01000 01000 01000",
    8: "01110 10001 10001 01110 10001 10001 01110", 9: "01110 10001 10001 01111 00001 00010 01100",
}


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
