"""What a decision costs: spikes, synaptic operations, MACs and energy per layer (SPEC R-ANA-ENERGY).

One report for every kind of agent, so that a DQN, a converted SNN and a directly trained
spiking Q-network (DSQN) compare in one table. Per layer of synapses (named after the neurons they
feed: ``fc1``/``conv1``, ..., ``output``):

- spikes of the layer's neurons per decision, and its firing rate, spikes / (neurons x T)
  (``None`` for a non-spiking layer: the ANN's, the DSQN's read-out);
- synaptic operations (accumulates, AC) of the synapses feeding it: the previous layer's spikes
  x fan-out (``snn.simulate.synaptic_ops``);
- multiply-accumulates (MAC) it spends: an ANN layer all of its MACs, a spiking network's first
  layer the MACs of its analog input (computed once per window), 0 for layers fed by spikes;
- the ANN's MACs for the same synapses (``snn.simulate.macs``).

Energy per decision = 0.9 pJ x AC + 4.6 pJ x MAC: 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from spikeverse.snn.simulate import is_stateful, macs

PJ_PER_AC = 0.9
PJ_PER_MAC = 4.6
ENERGY_CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz 2014): 0.9 pJ per accumulate (AC, one per "
                     "synaptic operation), 4.6 pJ per multiply-accumulate (MAC)")


def energy_uj(acs: float, macs_: float = 0.0) -> float:
    """Energy in microjoules: 0.9 pJ per AC + 4.6 pJ per MAC (45 nm)."""
    return (PJ_PER_AC * acs + PJ_PER_MAC * macs_) * 1e-6


@dataclass
class LayerCost:
    """A layer of synapses and the neurons it feeds: ``neurons`` outputs, ``ann_macs`` MACs per sample."""

    name: str
    neurons: int
    ann_macs: int
    spiking: bool = True


def describe_layers(modules: Sequence[nn.Module], input_shape: Sequence[int], *,
                    last_is_output: bool = True, spiking: bool = True) -> list[LayerCost]:
    """One :class:`LayerCost` per Conv2d/Linear of ``modules`` (run on a zero sample of
    ``input_shape``; stateful modules, i.e. neurons, are skipped), named conv{k}/fc{k} and the
    last one ``output`` if ``last_is_output``."""
    syn = [m for m in modules if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not syn:
        raise ValueError("no synaptic layer to describe")
    out: list[LayerCost] = []
    with torch.no_grad():
        h = torch.zeros(1, *input_shape, device=syn[0].weight.device, dtype=syn[0].weight.dtype)
        for m in modules:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                k = len(out) + 1
                last = last_is_output and k == len(syn)
                name = "output" if last else f"{'conv' if isinstance(m, nn.Conv2d) else 'fc'}{k}"
                n_macs = macs(m, tuple(h.shape[1:]))
                h = m(h)
                out.append(LayerCost(name, int(h[0].numel()), n_macs, spiking))
            elif not is_stateful(m):
                h = m(h)
    return out


class CostMeter:
    """Running per-layer totals of spikes and synaptic operations over every decision since
    :meth:`reset`, and the simulated steps; :meth:`means` gives them per decision."""

    def __init__(self, num_layers: int):
        self.num_layers = num_layers
        self.reset()

    def reset(self) -> None:
        self.decisions = 0
        self.steps = 0.0
        self.spikes = [0.0] * self.num_layers
        self.synops = [0.0] * self.num_layers

    def add(self, spikes: Sequence[torch.Tensor], synops: Sequence[torch.Tensor], steps: torch.Tensor) -> None:
        """Add a batch of decisions: per layer spikes [B] and synops [B], simulated steps [B]."""
        self.decisions += int(steps.shape[0])
        self.steps += float(steps.double().sum())
        for i, (s, o) in enumerate(zip(spikes, synops)):
            self.spikes[i] += float(s.double().sum())
            self.synops[i] += float(o.double().sum())

    def means(self) -> tuple[int, list[float], list[float], float]:
        """(decisions, spikes per layer, synops per layer, steps) per decision."""
        n = max(self.decisions, 1)
        return self.decisions, [s / n for s in self.spikes], [o / n for o in self.synops], self.steps / n


def cost_report(layers: Sequence[LayerCost], spikes: Sequence[float], synops: Sequence[float],
                layer_macs: Sequence[float], *, timesteps: int | None, decisions: int,
                mean_timesteps: float | None = None) -> dict[str, Any]:
    """The per-decision cost fields shared by every agent's evaluation (see the module docstring):
    per layer and in total, spikes, firing rate, synops, MACs and the ANN's MACs; energy of this
    agent and of the ANN."""
    T = timesteps or 1
    rows = [dict(name=l.name, neurons=l.neurons, spiking=l.spiking, spikes_per_decision=float(s),
                 firing_rate=float(s) / (l.neurons * T) if l.spiking else None,
                 synops_per_decision=float(o), macs_per_decision=float(m), ann_macs_per_decision=l.ann_macs)
            for l, s, o, m in zip(layers, spikes, synops, layer_macs)]
    spiking_neurons = sum(l.neurons for l in layers if l.spiking)
    total_spikes = float(sum(spikes))
    total_synops, total_macs = float(sum(synops)), float(sum(layer_macs))
    ann_macs = float(sum(l.ann_macs for l in layers))
    return dict(
        decisions=decisions, timesteps=timesteps,
        mean_timesteps_per_decision=mean_timesteps if mean_timesteps is not None else timesteps,
        layers=rows,
        spikes_per_decision=total_spikes,
        firing_rate=total_spikes / (spiking_neurons * T) if spiking_neurons else None,
        synops_per_decision=total_synops,
        macs_per_decision=total_macs,
        energy_uJ_per_decision=energy_uj(total_synops, total_macs),
        ann_macs_per_decision=ann_macs,
        ann_energy_uJ_per_decision=energy_uj(0.0, ann_macs),
        energy_convention=ENERGY_CONVENTION,
    )
