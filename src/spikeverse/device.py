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


def tune_cpu_allocator(mmap_threshold_mb: int = 32, trim_threshold_mb: int = 1024) -> bool:
    """Keep large CPU tensors in the heap instead of fresh ``mmap`` pages (glibc ``mallopt``).

    A spiking window allocates the same few-MB activations once per chunk of time steps; with
    glibc's defaults each of them can be a new mapping whose pages fault in (zero-filled) on first
    touch, which cost a third of the window time on the Nature-CNN benchmark. Raising the mmap and
    trim thresholds lets freed blocks be reused. Process-wide, so it is called by applications
    (the CLI, the benchmarks), not on import. Returns False where there is no glibc (no-op).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    ok = mallopt(m_mmap_threshold, mmap_threshold_mb << 20) == 1
    return ok and mallopt(m_trim_threshold, trim_threshold_mb << 20) == 1
