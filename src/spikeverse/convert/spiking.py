"""The converted spiking Q-network (seed 001, Tan, Patel & Kozma): a Policy that simulates one
window of T steps per batch of observations.

Every ReLU of the normalized network becomes a layer of integrate-and-fire neurons with reset
by subtraction (eq. 1-3), V_thr = 1, V(0) = 0:

    z_l(t) = W_l theta_{l-1}(t) + b_l,  theta_l(t) = H(V_l(t-1) + z_l(t) - V_thr),
    V_l(t) = V_l(t-1) + z_l(t) - V_thr theta_l(t)

and the output Linear feeds one more IF layer, one neuron per action. The input is analog
(a constant current, eq. 9-11 with z_0 = a_0): the first layer's current W_1 x + b_1 is computed
once per window (``snn.simulate.run_window`` with a constant input). Readouts of the output layer
after T steps (count N, final membrane V(T)):

- ``count``:  N
- ``rate``:   r = N / T
- ``robust``: f = r + V(T) / (T V_thr)   (eq. 17; the default) -- equal ranks are broken by the
  membrane, the neuron closer to its next spike wins
- ``membrane``: (V(T) - V(0) + V_thr N) / T, the membrane of an output neuron that integrates
  without firing divided by T, i.e. the mean input current (the non-spiking readout of seed 003).
  With V(0) = 0 it equals ``robust`` in exact arithmetic: eq. 17 recovers exactly what the
  output neurons' spikes and resets took away (eq. 4-7 summed over t).

Cost per decision (SPEC R-ANA-ENERGY): the SNN's synaptic operations are accumulates, one per
spike per outgoing synapse (spikes x fan-out, ``WindowRecord.synops``), plus the first layer's
analog input as multiply-accumulates, once per decision; the ANN costs its MACs
(``snn.simulate.macs``). Energy convention, 45 nm CMOS (Horowitz, ISSCC 2014, 32-bit float):
0.9 pJ per accumulate (AC), 4.6 pJ per multiply-accumulate (MAC).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from spikeverse.convert.graph import FlatQNetwork, synaptic_layers
from spikeverse.errors import SpikeverseError
from spikeverse.snn.neurons import IFNeuron
from spikeverse.snn.simulate import WindowRecord, macs, run_window

READOUTS = ("count", "rate", "robust", "membrane")
PJ_PER_AC = 0.9
PJ_PER_MAC = 4.6
ENERGY_CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz 2014): 0.9 pJ per accumulate (AC, one per "
                     "synaptic operation), 4.6 pJ per multiply-accumulate (MAC)")


def check_readout(name: str) -> str:
    if name not in READOUTS:
        raise SpikeverseError(f"unknown readout {name!r} (choose from {', '.join(READOUTS)})")
    return name


def check_timesteps(t: int) -> int:
    if int(t) != t or t < 1:
        raise SpikeverseError(f"timesteps must be an integer >= 1, got {t}")
    return int(t)


def readout(kind: str, counts: torch.Tensor, v_final: torch.Tensor, timesteps: int,
            v_th: float = 1.0, v_init: float = 0.0) -> torch.Tensor:
    """The output layer's value per action from its spike counts and final membrane (see the
    module docstring): count N, rate N/T, robust N/T + V(T)/(T V_thr) (seed 001 eq. 17), or
    membrane (V(T) - V(0) + V_thr N)/T."""
    check_readout(kind)
    T = float(timesteps)
    if kind == "count":
        return counts
    if kind == "rate":
        return counts / T
    if kind == "robust":
        return counts / T + v_final / (T * v_th)
    return (v_final - v_init + v_th * counts) / T


def energy_uj(acs: float, macs_: float = 0.0) -> float:
    """Energy in microjoules: 0.9 pJ per AC + 4.6 pJ per MAC (45 nm)."""
    return (PJ_PER_AC * acs + PJ_PER_MAC * macs_) * 1e-6


class SpikingQNetwork(nn.Module):
    """IF network converted from a normalized :class:`FlatQNetwork`; implements the Policy
    interface. ``timesteps`` and ``readout`` may be changed between calls.

    ``q_values(obs)`` resets every neuron, simulates one window of ``timesteps`` steps with the
    observation as a constant input current, and returns the readout [B, A]. ``diagnostics()``
    describes the last call; ``diagnostics(since_reset=True)`` averages over every decision
    since ``reset_stats()``.
    """

    def __init__(self, normalized: FlatQNetwork, timesteps: int = 100, readout: str = "robust",
                 v_th: float = 1.0, lambdas: list[float] | None = None):
        super().__init__()
        if not v_th > 0:
            raise SpikeverseError(f"the threshold must be > 0, got {v_th}")
        self.v_th = float(v_th)
        self.input_shape = normalized.input_shape
        self.num_actions = normalized.num_actions
        self.layout = normalized.layout()
        self.lambdas = list(lambdas) if lambdas is not None else None
        mods: list[nn.Module] = []
        for m in normalized.layers:
            mods.append(IFNeuron(self.v_th, reset="subtract") if isinstance(m, nn.ReLU) else copy.deepcopy(m))
        mods.append(IFNeuron(self.v_th, reset="subtract"))  # the spiking output layer (seed 001)
        self.layers = nn.Sequential(*mods)
        self.timesteps = timesteps
        self.readout = readout
        self._describe()
        self.reset_stats()
        self.last_record: WindowRecord | None = None

    # settable, validated attributes
    @property
    def timesteps(self) -> int:
        return self._timesteps

    @timesteps.setter
    def timesteps(self, t: int) -> None:
        self._timesteps = check_timesteps(t)

    @property
    def readout(self) -> str:
        return self._readout

    @readout.setter
    def readout(self, name: str) -> None:
        self._readout = check_readout(name)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _describe(self) -> None:
        """Layer names, neurons per layer, and the ANN's MACs per decision."""
        syn = synaptic_layers(self.layers)
        self.layer_names, self.neurons, self.ann_macs = [], [], []
        shape = self.input_shape
        with torch.no_grad():
            h = torch.zeros(1, *shape, device=syn[0].weight.device)
            k = 0
            for m in self.layers:
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    self.ann_macs.append(macs(m, tuple(h.shape[1:])))
                    k += 1
                    last = k == len(syn)
                    self.layer_names.append("output" if last else f"{'conv' if isinstance(m, nn.Conv2d) else 'fc'}{k}")
                    h = m(h)
                    self.neurons.append(h[0].numel())
                elif not isinstance(m, IFNeuron):
                    h = m(h)
        self.input_macs = self.ann_macs[0]

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(obs).to(self.device, torch.float32)
        if tuple(x.shape[1:]) != self.input_shape:
            raise SpikeverseError(f"observations of shape {tuple(x.shape[1:])}, the network takes {self.input_shape}")
        _, rec = run_window(list(self.layers), x, self.timesteps, record=True)
        self.last_record = rec
        q = readout(self.readout, rec.spike_counts[-1], rec.final_v[-1], self.timesteps, self.v_th)
        self._accumulate(rec)
        return q

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs)

    # -------------------------------------------------------------- measurements

    def _per_sample(self, rec: WindowRecord) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Spikes [B] per neuron layer, and synops [B] per layer of synapses, i.e. the
        accumulates done by the synapses *into* each neuron layer (the previous layer's spikes
        x fan-out; 0 for the first layer, whose analog input costs MACs instead)."""
        spikes = [c.flatten(1).sum(1).double() for c in rec.spike_counts]
        syn = [torch.zeros_like(spikes[0])] + [s.double() for s in rec.synops]
        if len(syn) != len(spikes):
            raise RuntimeError("one synop monitor per hidden layer was expected")
        return spikes, syn

    def reset_stats(self) -> None:
        """Start the running totals behind ``diagnostics(since_reset=True)`` again."""
        self._decisions = 0
        self._spike_sum = [0.0] * len(self.layer_names)
        self._synop_sum = [0.0] * len(self.layer_names)

    def _accumulate(self, rec: WindowRecord) -> None:
        spikes, syn = self._per_sample(rec)
        self._decisions += int(spikes[0].shape[0])
        for i in range(len(spikes)):
            self._spike_sum[i] += float(spikes[i].sum())
            self._synop_sum[i] += float(syn[i].sum())

    def diagnostics(self, since_reset: bool = False) -> dict[str, Any]:
        """Per-decision spike counts, firing rates, synaptic operations and energy of the last
        call (or averaged over all decisions since ``reset_stats()``), with the ANN's MACs.

        Per layer (named after the neurons: ``fc1``/``conv1``..., ``output``): its spikes and
        firing rate (spikes per neuron per step), and the cost of the synapses that feed it:
        SNN accumulates (the previous layer's spikes x fan-out), the analog input's MACs (first
        layer only) and the ANN's MACs for the same synapses."""
        if since_reset:
            n = self._decisions
            spikes = [s / max(n, 1) for s in self._spike_sum]
            syn = [s / max(n, 1) for s in self._synop_sum]
        else:
            if self.last_record is None:
                return {}
            sp, sy = self._per_sample(self.last_record)
            n = int(sp[0].shape[0])
            spikes = [float(s.mean()) for s in sp]
            syn = [float(s.mean()) for s in sy]
        T = self.timesteps
        layers = [dict(name=name, neurons=units, spikes_per_decision=s, firing_rate=s / (units * T),
                       synops_per_decision=o, input_macs_per_decision=float(self.input_macs) if i == 0 else 0.0,
                       ann_macs_per_decision=m)
                  for i, (name, units, s, o, m) in enumerate(zip(self.layer_names, self.neurons, spikes, syn,
                                                                self.ann_macs))]
        synops = float(sum(syn))
        ann_macs = float(sum(self.ann_macs))
        return dict(
            decisions=n, timesteps=T, readout=self.readout,
            layers=layers,
            spikes_per_decision=float(sum(spikes)),
            firing_rate=float(sum(spikes)) / (sum(self.neurons) * T),
            synops_per_decision=synops,
            input_macs_per_decision=float(self.input_macs),
            energy_uJ_per_decision=energy_uj(synops, self.input_macs),
            ann_macs_per_decision=ann_macs,
            ann_energy_uJ_per_decision=energy_uj(0.0, ann_macs),
            energy_convention=ENERGY_CONVENTION,
        )


def agreement(policy_a, policy_b, obs: torch.Tensor) -> float:
    """Fraction of observations on which two policies take the same greedy action (the
    conversion rate of seed 001 eq. 18 on a fixed set of frames)."""
    with torch.no_grad():
        a = policy_a.q_values(obs).argmax(-1).cpu()
        b = policy_b.q_values(obs).argmax(-1).cpu()
    return float((a == b).double().mean())
