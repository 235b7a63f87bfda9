"""Genomes: the flat float64 weight vectors that the GA and the ES evolve."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError


def genome_matrix(genomes, n_params: int) -> Tensor:
    """Genomes [B, P] (or one [P]) as a float64 tensor [B, P], refused with a one-line error when
    P is not ``n_params`` or a gene is NaN or infinite."""
    g = torch.as_tensor(np.asarray(genomes, dtype=np.float64))
    if g.ndim == 1:
        g = g.unsqueeze(0)
    if g.ndim != 2 or g.shape[1] != n_params:
        raise SpikeverseError(f"a genome of this network has {n_params} genes, got shape {tuple(g.shape)}")
    if not torch.isfinite(g).all():
        raise SpikeverseError("genome holds NaN or infinite weights")
    return g
