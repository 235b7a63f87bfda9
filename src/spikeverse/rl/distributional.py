"""Categorical distributional Q-learning, C51 (Bellemare et al. 2017; SPEC R-RL-C51).

Support z_j = v_min + j (v_max - v_min)/(N - 1), j = 0..N-1. The target distribution of
R + d Z(s', a*) (d = bootstrap discount, 0 at a terminal) is projected back on the support:
Tz_j = clip(R + d z_j, v_min, v_max), b_j = (Tz_j - v_min)/dz, and the mass p_j is split
between the atoms floor(b_j) and ceil(b_j) in proportion to the distance (eq. 7 of the paper).
"""

from __future__ import annotations

import torch


def make_support(v_min: float, v_max: float, atoms: int, device=None) -> torch.Tensor:
    """Evenly spaced atoms z_0..z_{N-1} on [v_min, v_max]."""
    return torch.linspace(v_min, v_max, atoms, device=device)


def project_distribution(
    next_probs: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Project R + d * Z onto the fixed support.

    next_probs [B, N] (probabilities of the chosen next action), rewards [B], discounts [B]
    (gamma^n, or 0 at a terminal). Returns target probabilities [B, N]; each row sums to the
    row sum of ``next_probs`` (mass is conserved exactly).
    """
    atoms = support.numel()
    v_min, v_max = support[0].item(), support[-1].item()
    dz = (v_max - v_min) / (atoms - 1)
    tz = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * support.unsqueeze(0)).clamp(v_min, v_max)
    b = (tz - v_min) / dz
    lower = b.floor().long().clamp(0, atoms - 1)
    upper = b.ceil().long().clamp(0, atoms - 1)
    # when b is an integer, lower == upper: give all the mass to that atom
    w_upper = b - lower.to(b.dtype)
    w_lower = 1.0 - w_upper
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * w_lower)
    target.scatter_add_(1, upper, next_probs * w_upper)
    return target
