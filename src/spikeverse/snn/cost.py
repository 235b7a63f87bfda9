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

Who counts: a network describes each ``q_values`` call (:class:`CallCost`, per sample); a
:class:`CostMonitor` wraps any policy and sums its calls in a :class:`CostMeter`, whose report is
per decision: sum over calls and samples / decisions. The networks keep no running totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from spikeverse.policy import Metered, Policy
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


@dataclass
class CallCost:
    """What one ``q_values`` call cost, per sample: per layer (``layers``) its spikes [B] and the
    synaptic operations of the synapses feeding it [B]; the simulated steps [B]; the MACs per
    decision of each layer; the window T (None for an ANN)."""

    layers: list[LayerCost]
    spikes: list[torch.Tensor]
    synops: list[torch.Tensor]
    steps: torch.Tensor
    layer_macs: list[float]
    timesteps: int | None


class CostMeter:
    """Running per-layer totals of spikes and synaptic operations over every decision
    :meth:`add`-ed, and the simulated steps; :meth:`means` gives them per decision and
    :meth:`report` the :func:`cost_report` (with the layers, MACs and T of the last call)."""

    def __init__(self):
        self.last: CallCost | None = None
        self.decisions = 0
        self.steps = 0.0
        self.spikes: list[float] = []
        self.synops: list[float] = []

    def add(self, cost: CallCost) -> None:
        """Add a call's decisions: per layer sum_b spikes[b] and sum_b synops[b], sum_b steps[b]."""
        if not self.spikes:
            self.spikes, self.synops = [0.0] * len(cost.layers), [0.0] * len(cost.layers)
        self.last = cost
        self.decisions += int(cost.steps.shape[0])
        self.steps += float(cost.steps.double().sum())
        for i, (s, o) in enumerate(zip(cost.spikes, cost.synops)):
            self.spikes[i] += float(s.double().sum())
            self.synops[i] += float(o.double().sum())

    def means(self) -> tuple[int, list[float], list[float], float]:
        """(decisions, spikes per layer, synops per layer, steps) per decision."""
        n = max(self.decisions, 1)
        return self.decisions, [s / n for s in self.spikes], [o / n for o in self.synops], self.steps / n

    def report(self) -> dict[str, Any]:
        """The per-decision :func:`cost_report` of everything added; {} before the first call."""
        if self.last is None:
            return {}
        n, spikes, synops, steps = self.means()
        T = self.last.timesteps
        return cost_report(self.last.layers, spikes, synops, self.last.layer_macs, timesteps=T, decisions=n,
                           mean_timesteps=steps if T is not None else None)


class CostMonitor:
    """A :class:`~spikeverse.policy.Policy` that plays ``policy`` and counts what its decisions
    cost: after every ``q_values`` call it adds the call's :class:`CallCost` (``policy.call_cost()``,
    for a :class:`~spikeverse.policy.Metered` policy) to its meter. ``diagnostics()`` is the
    per-decision :func:`cost_report` since construction or :meth:`reset_stats` ({} for a policy
    that reports no cost: tabular, evolved)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.num_actions = policy.num_actions
        self.metered = isinstance(policy, Metered)
        self.reset_stats()

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.policy.q_values(obs)
        if self.metered:
            self.meter.add(self.policy.call_cost())
        return q

    def reset_stats(self) -> None:
        """Count from zero again."""
        self.meter = CostMeter()

    def diagnostics(self) -> dict[str, Any]:
        return self.meter.report()


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
