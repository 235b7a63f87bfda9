"""Data-dependent initialisation of a directly trained spiking network: make every layer fire.

With PyTorch's default initialisation (Kaiming uniform) and DSQN neurons at V_th = 1, tau = 2
(seed 003), the observations of CartPole or MinAtar drive almost no neuron to threshold (the first hidden
layer on random CartPole states barely fires, the second and MinAtar Breakout's layers do not;
no results file keeps these rates). Surrogate gradients then start from a silent network. The DSQN
CartPole default, with this initialisation, is measured in benchmarks/results/dsqn_cartpole.md.

This initialisation (ours, in the spirit of the layer-wise threshold balancing of conversion,
seed 001) scales the synapses feeding each spiking layer, first to last, by one factor c per layer
(W <- c W, b <- c b) so that the layer's mean firing rate on a batch of observations is ``rate``.
The rate of a layer is non-decreasing in c (its current scales with c, its input is fixed), so c
is found by bisection on log2 c in [-8, 8]. The neuron model (V_th, tau) is untouched.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from spikeverse.snn.neurons import reset_net
from spikeverse.snn.simulate import is_stateful, run_window

LOG2_RANGE = 8.0


@torch.no_grad()
def calibrate_firing(layers: Sequence[nn.Module], x: torch.Tensor, timesteps: int, rate: float,
                     iterations: int = 24) -> list[float]:
    """Scale, in place, the last Conv2d/Linear before each stateful layer of ``layers`` so that
    the layer fires at mean ``rate`` (spikes per neuron per step) on the constant input ``x``
    [B, ...] over ``timesteps`` steps; returns the factors c, one per spiking layer."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"the target firing rate must be in (0, 1), got {rate}")
    layers = list(layers)
    scales: list[float] = []
    for i, m in enumerate(layers):
        if not is_stateful(m):
            continue
        syn = next((layers[j] for j in range(i - 1, -1, -1) if isinstance(layers[j], (nn.Conv2d, nn.Linear))), None)
        if syn is None:
            continue
        prefix = layers[: i + 1]
        w0 = syn.weight.detach().clone()
        b0 = syn.bias.detach().clone() if syn.bias is not None else None

        def firing(log2_c: float) -> float:
            c = 2.0 ** log2_c
            syn.weight.copy_(w0 * c)
            if b0 is not None:
                syn.bias.copy_(b0 * c)
            _, rec = run_window(prefix, x, timesteps, record=True)
            reset_net(nn.Sequential(*prefix))
            return float(rec.spike_counts[-1].double().mean()) / timesteps

        lo, hi = -LOG2_RANGE, LOG2_RANGE
        if firing(hi) < rate:  # cannot reach the rate: take the largest factor
            lo = hi
        elif firing(lo) > rate:
            hi = lo
        for _ in range(iterations if lo < hi else 0):
            mid = 0.5 * (lo + hi)
            if firing(mid) < rate:
                lo = mid
            else:
                hi = mid
        firing(hi)  # leave the weights at the factor that reaches the rate
        scales.append(2.0 ** hi)
    if not all(math.isfinite(s) for s in scales):
        raise RuntimeError("calibration produced a non-finite scale")
    return scales
