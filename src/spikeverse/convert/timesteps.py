"""Choosing the simulation length T of a converted SNN by its agreement on held-out frames.

Energy per decision grows with T (every step costs synaptic operations), so the cheapest SNN that
keeps the DQN's decisions is the one with the smallest T whose agreement with the DQN reaches a
target (default 0.99). Agreement is the fraction of frames on which the SNN's greedy action equals
the DQN's (seed 001 eq. 18 on a fixed set of frames). The frames are held out: the DQN plays with
the collection seed + ``HELDOUT_SEED_OFFSET``, episodes that neither the normalization nor the
fast method's fine-tune saw. T is tried in ascending order on ``T_GRID`` (seed 001's range) and
the search stops at the first T that reaches the target.
"""

from __future__ import annotations

from typing import Any

import torch

from spikeverse.convert.graph import FlatQNetwork
from spikeverse.convert.normalize import collect_activations
from spikeverse.convert.spiking import SpikingQNetwork, agreement
from spikeverse.errors import SpikeverseError
from spikeverse.progress import Progress
from spikeverse.runtime import HELDOUT_SEED_OFFSET

T_GRID = (4, 8, 16, 32, 64, 128, 256, 500)  # seed 001 Fig. 1a sweeps T up to 500; 4 shows where the fast method starts
AUTO_TARGET = 0.99
AUTO_FRAMES = 2_000


def check_auto(target: float, frames: int) -> None:
    """Refuse an agreement target outside (0, 1] or fewer than one held-out frame (one line)."""
    if not 0.0 < target <= 1.0:
        raise SpikeverseError(f"--agreement-target must be in (0, 1], got {target}")
    if int(frames) != frames or frames < 1:
        raise SpikeverseError(f"--heldout-frames must be an integer >= 1, got {frames}")


def heldout_frames(ann: FlatQNetwork, env_id: str, *, frames: int = AUTO_FRAMES, epsilon: float = 0.05,
                   seed: int = 0, progress: bool | None = None) -> torch.Tensor:
    """``frames`` observations of the DQN's own play (epsilon-greedy) from episodes seeded by
    ``seed + HELDOUT_SEED_OFFSET``: frames a conversion that collected with ``seed`` never saw."""
    stats = collect_activations(ann, env_id, frames=frames, epsilon=epsilon, seed=seed + HELDOUT_SEED_OFFSET,
                                keep_observations=True, progress=progress, desc=f"held-out frames {env_id}")
    return stats.observations


def agreement_vs_timesteps(snn: SpikingQNetwork, ann: FlatQNetwork, obs: torch.Tensor, *,
                           grid: tuple[int, ...] = T_GRID, target: float | None = None,
                           progress: bool | None = None) -> list[dict[str, Any]]:
    """[{timesteps, agreement}] of ``snn`` against ``ann`` on ``obs`` for T in ``grid``
    (ascending); with ``target``, stop after the first T that reaches it. ``snn.timesteps`` is
    left as it was."""
    saved, curve = snn.timesteps, []
    report = Progress(len(grid), "agreement vs T", unit="T", enabled=progress)
    try:
        for t in sorted(grid):
            snn.timesteps = t
            curve.append(dict(timesteps=t, agreement=round(agreement(snn, ann, obs), 5)))
            report.update(1, T=t, agreement=curve[-1]["agreement"])
            if target is not None and curve[-1]["agreement"] >= target:
                break
    finally:
        snn.timesteps = saved
        report.close()
    return curve


def choose_timesteps(curve: list[dict[str, Any]], target: float) -> tuple[int, bool]:
    """(the smallest T whose agreement reaches ``target``, True), or, when none does, (the T of
    the highest agreement, the smallest of ties, False)."""
    for point in sorted(curve, key=lambda p: p["timesteps"]):
        if point["agreement"] >= target:
            return point["timesteps"], True
    best = max(curve, key=lambda p: (p["agreement"], -p["timesteps"]))
    return best["timesteps"], False


def auto_timesteps(snn: SpikingQNetwork, ann: FlatQNetwork, env_id: str, *, target: float = AUTO_TARGET,
                   frames: int = AUTO_FRAMES, epsilon: float = 0.05, seed: int = 0,
                   progress: bool | None = None) -> dict[str, Any]:
    """Set ``snn.timesteps`` to the smallest T of ``T_GRID`` whose agreement with ``ann`` on
    held-out frames reaches ``target``; returns what was measured (saved with the SNN)."""
    check_auto(target, frames)
    obs = heldout_frames(ann, env_id, frames=frames, epsilon=epsilon, seed=seed, progress=progress)
    curve = agreement_vs_timesteps(snn, ann, obs, target=target, progress=progress)
    chosen, reached = choose_timesteps(curve, target)
    snn.timesteps = chosen
    return dict(target=target, heldout_frames=int(obs.shape[0]), heldout_seed=seed + HELDOUT_SEED_OFFSET,
                epsilon=epsilon, curve=curve, timesteps=chosen, reached=reached)
