"""``--device auto|cpu|cuda`` resolution."""

from __future__ import annotations

import torch

from spikeverse.errors import SpikeverseError


def resolve_device(name: str = "auto") -> torch.device:
    """auto -> cuda when available, else cpu; asking for cuda without one is a user error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpikeverseError("--device cuda was asked for, but no CUDA device is available (use --device cpu or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise SpikeverseError(f"unknown device '{name}' (use auto, cpu or cuda)")
