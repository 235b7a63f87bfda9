"""Frames the user supplies besides the DQN's own play (``spikeverse convert --frames-from FILE.npy``,
e.g. the observations of the DQN's training replay): loaded from a .npy file and checked.

The frames are observations as the environment gives them (e.g. uint8 pixels for Atari: the
network folds obs_scale in), [N, *observation shape], channels first for images. The conversion
methods add them to the frames they play (``extra_frames``): the activation statistics cover
both, and so does the fast method's fine-tune.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from spikeverse.errors import SpikeverseError

NUMERIC_KINDS = "biuf"  # numpy dtype kinds: bool, signed and unsigned integers, floats


def check_frames(frames: np.ndarray | torch.Tensor | Sequence, input_shape: Sequence[int],
                 what: str = "extra_frames") -> torch.Tensor:
    """``frames`` as a float32 CPU tensor [N, *input_shape]; refused, with one line naming ``what``,
    if its values are not real numbers (floats, integers or bool), its shape is not
    [N, *input_shape], it holds no frame, or a value is NaN or infinite (as float32)."""
    frames = frames if torch.is_tensor(frames) else np.asarray(frames)
    shape, dims = tuple(frames.shape), tuple(int(d) for d in input_shape)
    numeric = (not frames.is_complex()) if torch.is_tensor(frames) else np.dtype(frames.dtype).kind in NUMERIC_KINDS
    if not numeric:
        raise SpikeverseError(f"{what} holds {frames.dtype} values, not real numbers (float, integer or bool)")
    if shape[1:] != dims:
        raise SpikeverseError(f"{what} holds an array of shape {shape}, expected (N, {', '.join(map(str, dims))}): "
                              f"N frames of the network's input shape {dims}")
    if shape[0] == 0:
        raise SpikeverseError(f"{what} holds no frames (shape {shape})")
    if torch.is_tensor(frames):
        out = frames.detach().to("cpu", torch.float32)
    else:  # any byte order, layout or width (float128 too); too large for float32: inf, refused below
        with np.errstate(over="ignore", invalid="ignore"):
            out = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise SpikeverseError(f"{what} holds NaN or infinite values ({bad} of {out.numel()}, as float32)")
    return out


def load_frames(path: str | Path, input_shape: Sequence[int]) -> torch.Tensor:
    """The frames [N, *input_shape] saved with ``numpy.save`` in ``path``, as float32 (no pickle:
    object arrays are refused); one line for a missing or unreadable file, then :func:`check_frames`."""
    path = Path(path)
    if not path.is_file():
        raise SpikeverseError(f"no frames file at {path}")
    try:
        with path.open("rb") as f:
            array = np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # magic or header wrong, truncated data, object arrays
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise SpikeverseError(f"{path} is not a readable .npy file: {reason}") from None
    return check_frames(array, input_shape, str(path))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
