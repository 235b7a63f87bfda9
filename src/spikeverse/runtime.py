"""Run-time helpers shared by every layer: seeds derived from keys, torch on one thread, and
weights on a grid that makes sums exact.

These are deliberately small and dependency-free (numpy, torch) so that models, optimizers and
trainers can share them without importing each other.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError

_GRID = 2.0 ** 24

# Seed offsets. Each random stream of a run is its seed plus a named offset, so that no two
# purposes share episodes or frames and a reader can tell which stream a number came from.
FINETUNE_SEED_OFFSET = 1  # the fast method fine-tunes on frames of seed + 1, never its calibration frames (seed)
SWEEP_SEED_OFFSET = 1  # the main job's T sweep plays episodes of seed + 1, not its report's episodes (seed)
MODEL_SELECTION_SEED = 10_000  # training's model-selection evaluations play seed 10,000 + step: away from the
#                                training envs (seed + i) and from a user's evaluation seeds (small integers)
HELDOUT_SEED_OFFSET = 1000  # benchmarks evaluate at seed 1000 + seed: episodes no training or tuning run has seen


def derive_seed(*keys: int | str) -> int:
    """A 32-bit seed that depends on ``keys`` alone (e.g. seed, generation, index, purpose), by
    numpy's ``SeedSequence`` (strings hashed stably as their bytes)."""
    ints = [k if isinstance(k, int) else int.from_bytes(str(k).encode(), "little") for k in keys]
    if any(k < 0 for k in ints):
        raise SpikeverseError(f"seeds must be >= 0, got {keys}")
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


def quantize(w: Tensor) -> Tensor:
    """Weights rounded to multiples of 2^-24: a sum of them (times 0/1 spikes) is then exact in
    float64 (53-bit significand) whatever the order, as long as its partial sums stay below 2^29."""
    return torch.round(w * _GRID) / _GRID


@contextlib.contextmanager
def single_thread():
    """torch on one thread inside the block: a window's tensors are a few KB, and on a busy
    machine OpenMP's synchronisation made a decision several times slower (not kept in a results file)."""
    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)
