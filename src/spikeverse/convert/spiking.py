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

Variants used by the conversion methods (``convert.methods``): ``neuron="lif"`` (seed 000: the
continuous-form LIF of ``snn.neurons.lif_step``, hard reset, time constant ``tau`` steps),
``encoding="poisson"`` (seed 000: rate-coded input, below), ``v_init`` (every neuron starts at
V(0), e.g. V_thr/2), and ``early_decision`` (stop a sample's window once its argmax cannot change,
see :meth:`SpikingQNetwork.settled`).

Poisson input: with x_max the largest |input| seen while collecting, the input at each step is
x_max sign(x) [u < |x| / x_max], u ~ U(0, 1), so that its mean over the window is x.

Cost per decision (SPEC R-ANA-ENERGY): the SNN's synaptic operations are accumulates, one per
spike per outgoing synapse (spikes x fan-out, ``WindowRecord.synops``), plus the first layer's
analog input as multiply-accumulates, once per decision; the ANN costs its MACs
(``snn.simulate.macs``). The report and the energy convention (45 nm: 0.9 pJ per AC, 4.6 pJ per
MAC) are ``snn.cost``'s, shared with the DQN and the DSQN.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from spikeverse.convert.graph import FlatQNetwork
from spikeverse.errors import SpikeverseError
from spikeverse.snn.cost import ENERGY_CONVENTION, CallCost, CostMeter, describe_layers, energy_uj  # noqa: F401
from spikeverse.snn.encoders import signed_poisson
from spikeverse.snn.neurons import IFNeuron, LIFNeuron
from spikeverse.snn.simulate import WindowRecord, check_timesteps, run_window, synaptic_ops  # noqa: F401

READOUTS = ("count", "rate", "robust", "membrane")
NEURONS = ("if", "lif")
ENCODINGS = ("analog", "poisson")
EARLY_READOUTS = ("robust", "membrane")  # readouts that rank by the integrated output current


def check_readout(name: str) -> str:
    if name not in READOUTS:
        raise SpikeverseError(f"unknown readout {name!r} (choose from {', '.join(READOUTS)})")
    return name


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


class SpikingQNetwork(nn.Module):
    """IF network converted from a normalized :class:`FlatQNetwork`; implements the Policy
    interface. ``timesteps`` and ``readout`` may be changed between calls.

    ``q_values(obs)`` resets every neuron, simulates one window of ``timesteps`` steps with the
    observation as a constant input current, and returns the readout [B, A]. ``call_cost()``
    and ``diagnostics()`` describe the last call (a ``snn.cost.CostMonitor`` sums over calls).
    """

    def __init__(self, normalized: FlatQNetwork, timesteps: int = 100, readout: str = "robust",
                 v_th: float = 1.0, lambdas: list[float] | None = None, *, neuron: str = "if",
                 v_init: float = 0.0, tau: float = 10.0, encoding: str = "analog", input_scale: float = 1.0,
                 early_decision: bool = False, check_every: int = 4, seed: int = 0):
        super().__init__()
        if not v_th > 0:
            raise SpikeverseError(f"the threshold must be > 0, got {v_th}")
        if neuron not in NEURONS:
            raise SpikeverseError(f"unknown neuron model {neuron!r} (choose from {', '.join(NEURONS)})")
        if encoding not in ENCODINGS:
            raise SpikeverseError(f"unknown input encoding {encoding!r} (choose from {', '.join(ENCODINGS)})")
        if not tau > 0 or not input_scale > 0 or check_every < 1:
            raise SpikeverseError("tau and input_scale must be > 0 and check_every >= 1")
        self.v_th = float(v_th)
        self.input_shape = normalized.input_shape
        self.num_actions = normalized.num_actions
        self.layout = normalized.layout()
        self.lambdas = list(lambdas) if lambdas is not None else None
        self.neuron, self.v_init, self.tau = neuron, float(v_init), float(tau)
        self.encoding, self.input_scale, self.seed = encoding, float(input_scale), int(seed)
        self.early_decision, self.check_every = bool(early_decision), int(check_every)
        self._generator: torch.Generator | None = None
        self._margin: torch.Tensor | None = None

        def spiking() -> nn.Module:
            if neuron == "lif":
                return LIFNeuron(self.tau, v_th=self.v_th, reset="hard", v_init=self.v_init)
            return IFNeuron(self.v_th, reset="subtract", v_init=self.v_init)

        mods: list[nn.Module] = []
        for m in normalized.layers:
            mods.append(spiking() if isinstance(m, nn.ReLU) else copy.deepcopy(m))
        mods.append(spiking())  # the spiking output layer (seed 001)
        self.layers = nn.Sequential(*mods)
        self.timesteps = timesteps
        self.readout = readout
        self._describe()
        self.last_record: WindowRecord | None = None
        self.last_steps: torch.Tensor | None = None

    def options(self) -> dict[str, Any]:
        """The settings that rebuild this SNN from its weights (saved with it)."""
        return dict(neuron=self.neuron, v_init=self.v_init, tau=self.tau, encoding=self.encoding,
                    input_scale=self.input_scale, early_decision=self.early_decision,
                    check_every=self.check_every, seed=self.seed)

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
        """Layer names, neurons per layer, and the ANN's MACs per decision (``snn.cost``)."""
        self.layer_costs = describe_layers(list(self.layers), self.input_shape)
        self.layer_names = [l.name for l in self.layer_costs]
        self.neurons = [l.neurons for l in self.layer_costs]
        self.ann_macs = [l.ann_macs for l in self.layer_costs]
        self.input_macs = self.ann_macs[0]

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(obs).to(self.device, torch.float32)
        if tuple(x.shape[1:]) != self.input_shape:
            raise SpikeverseError(f"observations of shape {tuple(x.shape[1:])}, the network takes {self.input_shape}")
        rec = self._early(x) if self.early_decision else self._window(x, self.timesteps, reset=True)
        if not self.early_decision:
            self.last_steps = torch.full((x.shape[0],), self.timesteps, device=x.device)
        self.last_record = rec
        q = readout(self.readout, rec.spike_counts[-1], rec.final_v[-1], self.timesteps, self.v_th,
                    self.v_init)
        return q

    def _window(self, x: torch.Tensor, steps: int, reset: bool) -> WindowRecord:
        """Simulate ``steps`` steps (continuing the state unless ``reset``) and return the record."""
        if self.encoding == "analog":
            return run_window(list(self.layers), x, steps, record=True, reset=reset)[1]
        spikes = self.encode(x, steps)
        rec = run_window(list(self.layers), spikes, constant_input=False, record=True, reset=reset)[1]
        first = next(m for m in self.layers if isinstance(m, (nn.Conv2d, nn.Linear)))
        counts = spikes.ne(0).sum(0).to(x.dtype)
        rec.input_synops = synaptic_ops(first, counts.flatten(1) if isinstance(first, nn.Linear) else counts)
        return rec

    def encode(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Poisson input [steps, B, ...]: x_max sign(x) [u < |x| / x_max] (mean x); seeded once."""
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return signed_poisson(x, steps, self.input_scale, self._generator)

    def reset_generator(self) -> None:
        """Start the Poisson input's random stream again from ``seed``."""
        self._generator = None

    def settled(self, total: torch.Tensor, remaining: int) -> torch.Tensor:
        """Early decision: which samples' argmax can no longer change, given the output layer's
        integrated input current ``total`` [B, A] so far and ``remaining`` steps.

        The last hidden layer's neurons spike at most once per step, so over R remaining steps
        the leader a* keeps its lead over every a if
            total_a* - total_a + R (b_a* - b_a + sum_j min(0, W_a*j - W_aj)) > 0,
        a guaranteed bound: the robust and membrane readouts rank actions by this total
        (reset by subtraction loses no charge), so the decision equals the full window's."""
        out = self._output_linear()
        if out is None:
            raise SpikeverseError("early decision needs a Linear output layer")
        W, b = out.weight, out.bias
        if self._margin is None or self._margin.device != W.device:
            diff = W.unsqueeze(1) - W.unsqueeze(0)  # [a*, a, J]
            self._margin = b.unsqueeze(1) - b.unsqueeze(0) + diff.clamp(max=0).sum(-1)  # [a*, a]
        lead = total.argmax(-1)
        gap = total.gather(1, lead[:, None]) - total + remaining * self._margin[lead]  # [B, A]
        gap.scatter_(1, lead[:, None], float("inf"))
        return (gap > 0).all(-1)

    def _output_linear(self) -> nn.Linear | None:
        syn = [m for m in self.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
        return syn[-1] if isinstance(syn[-1], nn.Linear) else None

    def _early(self, x: torch.Tensor) -> WindowRecord:
        """Run the window in pieces of ``check_every`` steps; stop when every sample's decision is
        settled. A settled sample's record (spikes, synops, final state) is frozen at its
        decision, so its costs count only the steps it used (``last_steps``)."""
        if self.readout not in EARLY_READOUTS or self.neuron != "if":
            raise SpikeverseError(f"early decision needs IF neurons and a {' or '.join(EARLY_READOUTS)} readout")
        T, B = self.timesteps, x.shape[0]
        done = torch.zeros(B, dtype=torch.bool, device=x.device)
        steps = torch.full((B,), T, device=x.device)
        merged: WindowRecord | None = None
        t = 0
        while t < T:
            k = min(self.check_every, T - t)
            rec = self._window(x, k, reset=(t == 0))
            t += k
            live = ~done
            if merged is None:
                merged = rec
            else:
                merged = _merge(merged, rec, live)
            v_out, n_out = merged.final_v[-1], merged.spike_counts[-1]
            total = v_out - self.v_init + self.v_th * n_out  # integrated output current
            now = live & self.settled(total, T - t)
            steps[now] = t
            done |= now
            if bool(done.all()):
                break
        merged.timesteps = T
        self.last_steps = steps
        return merged

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs)

    # -------------------------------------------------------------- measurements

    def _per_sample(self, rec: WindowRecord) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Spikes [B] per neuron layer, and synops [B] per layer of synapses, i.e. the
        accumulates done by the synapses *into* each neuron layer (the previous layer's spikes
        x fan-out; for the first layer, the input spikes x fan-out with Poisson input, 0 with
        analog input, which costs MACs instead)."""
        spikes = [c.flatten(1).sum(1).double() for c in rec.spike_counts]
        first = rec.input_synops.double() if rec.input_synops is not None else torch.zeros_like(spikes[0])
        syn = [first] + [s.double() for s in rec.synops]
        if len(syn) != len(spikes):
            raise RuntimeError("one synop monitor per hidden layer was expected")
        return spikes, syn

    def call_cost(self) -> CallCost | None:
        """What the last call cost (``snn.cost.CallCost``): per sample, each neuron layer's
        spikes and the accumulates of the synapses feeding it, the steps simulated; the analog
        input's MACs (first layer, once per window); None before the first call."""
        if self.last_record is None:
            return None
        spikes, syn = self._per_sample(self.last_record)
        input_macs = float(self.input_macs) if self.encoding == "analog" else 0.0
        layer_macs = [input_macs] + [0.0] * (len(self.layer_costs) - 1)
        return CallCost(self.layer_costs, spikes, syn, self.last_steps, layer_macs, self.timesteps)

    def diagnostics(self) -> dict[str, Any]:
        """Per-decision cost of the last call: the ``snn.cost.cost_report`` fields, i.e. per layer
        its spikes, firing rate, the accumulates of the synapses feeding it (the previous layer's
        spikes x fan-out), the analog input's MACs (first layer only) and the ANN's MACs; energy of
        the SNN and of the ANN. Plus the readout and the SNN's options. {} before the first call."""
        cost = self.call_cost()
        if cost is None:
            return {}
        meter = CostMeter()
        meter.add(cost)
        return dict(readout=self.readout, **self.options(), **meter.report())


def _merge(acc: WindowRecord, new: WindowRecord, live: torch.Tensor) -> WindowRecord:
    """Add a later piece of a window to ``acc`` for the ``live`` samples only (the others'
    decisions are already taken)."""
    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        m = live.view(-1, *([1] * (a.dim() - 1)))
        return torch.where(m, b, a)

    acc.spike_counts = [pick(a, a + b) for a, b in zip(acc.spike_counts, new.spike_counts)]
    acc.final_v = [pick(a, b) for a, b in zip(acc.final_v, new.final_v)]
    acc.synops = [pick(a, a + b) for a, b in zip(acc.synops, new.synops)]
    if acc.input_synops is not None:
        acc.input_synops = pick(acc.input_synops, acc.input_synops + new.input_synops)
    return acc


def agreement(policy_a, policy_b, obs: torch.Tensor) -> float:
    """Fraction of observations on which two policies take the same greedy action (the
    conversion rate of seed 001 eq. 18 on a fixed set of frames)."""
    with torch.no_grad():
        a = policy_a.q_values(obs).argmax(-1).cpu()
        b = policy_b.q_values(obs).argmax(-1).cpu()
    return float((a == b).double().mean())
