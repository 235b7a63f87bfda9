"""The directly trained spiking classifier (seed 000 sec. 7.2): Poisson-coded pixels into layers of
LIF neurons, one output neuron per class, classified by its spike count, trained by
backpropagation through time with a surrogate gradient.

    pixels -> Linear -> LIF -> ... -> Linear -> LIF (10 output neurons) -> spike counts N_c

The neurons are ``snn.neurons.LIFNeuron`` (seed 000 sec. 5.2's continuous LIF, integrated
exactly per step) with unit gain per step, R = 1 / (1 - e^{-dt/tau}):

    u_t = e^{-1/tau} v_{t-1} + I_t,   s_t = H(u_t - V_th),   v_t = u_t - V_th s_t   (V_th = 1)

(snnTorch's ``Leaky`` with beta = e^{-1/tau}, reset by subtraction), so that PyTorch's default
initialization of the Linear layers makes them fire from the first step. H is exact forward;
backward its derivative is the surrogate's (``snn.surrogates``). The window runs through
``snn.simulate.run_window`` (the Linear layers with time folded into the batch).

The loss is the cross-entropy of the spike counts taken as logits, CE(N, y) (snnTorch's
``ce_count_loss``): it raises the count of the true class against the others'.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from spikeverse.snn.neurons import LIFNeuron
from spikeverse.snn.simulate import run_window
from spikeverse.snn.surrogates import surrogate as make_surrogate

SURROGATE = "fast_sigmoid"
ALPHA = 5.0
TAU = 10.0


class LIFClassifier(nn.Module):
    """Linear + LIF layers of widths ``hidden``, then a Linear + LIF layer of ``classes`` output
    neurons. ``forward(spikes [T, B, inputs])`` returns the output spike counts [B, classes]
    (differentiable through the surrogate); ``layers`` is the stack ``run_window`` simulates."""

    def __init__(self, inputs: int, hidden: Sequence[int], classes: int = 10, *, tau: float = TAU,
                 surrogate: str = SURROGATE, alpha: float | None = ALPHA, v_th: float = 1.0):
        super().__init__()
        self.spike_fn = make_surrogate(surrogate, alpha)
        self.tau = float(tau)
        gain = 1.0 / (1.0 - math.exp(-1.0 / self.tau))  # u = e^{-1/tau} v + I
        mods: list[nn.Module] = []
        widths = [int(inputs), *map(int, hidden), int(classes)]
        for a, b in zip(widths, widths[1:]):
            mods += [nn.Linear(a, b), LIFNeuron(self.tau, r=gain, v_th=v_th, reset="subtract", spike_fn=self.spike_fn)]
        self.layers = nn.Sequential(*mods)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        out, _ = run_window(list(self.layers), spikes, constant_input=False)
        return out.sum(0)


def count_loss(counts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the output spike counts as logits (mean over the batch)."""
    return F.cross_entropy(counts, labels)
