"""Spiking Q-networks as NIR graphs: converted SNNs (naive, tan, fast) and DSQNs.

Both are stacks of Conv2d / Linear (NIR ``Conv2d`` / ``Affine``) and Flatten with spiking
neurons after every hidden layer, mapped by ``io.nir.nodes`` so that forward Euler at
``io.nir.nodes.DT`` is spikeverse's own step:

- converted SNN, tan and fast: IF neurons v <- v + z (NIR ``IF``, R = 1/DT), V_thr = 1 (the
  per-unit / per-channel thresholds of the normalization are in the weights), reset by
  subtraction and V(0) = v_init V_thr in node metadata; naive: LIF v <- e^{-1/tau} v +
  (1 - e^{-1/tau}) I (NIR ``LIF``, tau_NIR = DT / (1 - e^{-1/tau})), hard reset as NIR's.
  The output layer: its IF neurons for the count and rate readouts (Output = their spikes);
  for the membrane and robust readouts, which read the integrated output current, the graph ends
  at the output Affine (Output = the current of each step) and the readout sums it.
- DSQN (seed 003): LIF neurons in the DSQN form U = V + (I - V + V_r) / tau_s (NIR ``LIF`` with
  tau_NIR = tau_s DT, R = 1, v_leak = v_reset = V_r: exactly the Euler step), hard reset (a
  soft-reset DSQN's subtraction goes into node metadata); the non-spiking head
  O = W (1/T) sum_t S_t + b as the Affine whose per-step output the ``mean`` readout averages.
  A dueling head is folded into one Affine (``convert.graph.fold_dueling``), a noisy head in
  eval mode gives its mean weights, the observation scale is folded into the first layer;
  a C51 head is refused.

Each exporter returns the graph (metadata: ``io.nir.info.AgentInfo``) and lists in ``differs``
what a simulator reading the graph alone computes differently.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import nir
import torch
from torch import nn

from spikeverse.convert.graph import env_io, fold_dueling, plain_linear
from spikeverse.convert.spiking import SpikingQNetwork
from spikeverse.errors import SpikeverseError
from spikeverse.io.nir.info import AgentInfo
from spikeverse.io.nir.nodes import (DT, affine, conv2d, flatten, if_neurons, lif_input_gain, lif_neurons,
                                     sequential_graph)
from spikeverse.rl.networks import QNetwork
from spikeverse.snn.neurons import DSQNLIFNeuron, IFNeuron, LIFNeuron

SPIKE_TEST = ("spike test: spikeverse fires at v >= V_thr, NIR's neurons at v > V_thr (this differs only where a "
              "membrane lands exactly on the threshold)")


def reset_caveat(v_th: float) -> str:
    return (f"reset by subtraction: spikeverse's neurons keep the charge above threshold (v <- v - {v_th:g} after a "
            "spike); NIR's IF/LIF reset to v_reset = 0 (a hard reset), so another simulator drops that charge at "
            "every spike and its neurons fire less")


def v_init_caveat(v_init: float, v_th: float) -> str:
    return (f"initial membrane: spikeverse starts every neuron at V(0) = {v_init:g} (= {v_init / v_th:g} V_thr) at "
            "each decision; NIR 1.0 has no initial state, so another simulator starts at rest (0)")


def _stack(layers: Sequence[nn.Module], input_shape: Sequence[int], neuron_node) -> tuple[list, tuple[int, ...]]:
    """NIR nodes of a Conv2d / Linear / Flatten / neuron stack, and the output shape (no batch).
    ``neuron_node(module, shape)`` gives a neuron module's node."""
    nodes: list[tuple[str, nir.NIRNode]] = []
    shape = tuple(int(s) for s in input_shape)
    count: dict[str, int] = {}

    def add(kind: str, node: nir.NIRNode) -> None:
        nonlocal shape
        i = count[kind] = count.get(kind, -1) + 1
        nodes.append((f"{kind}{i}", node))
        shape = tuple(int(s) for s in node.output_type["output"])

    for m in layers:
        if isinstance(m, nn.Conv2d):
            if len(shape) != 3:
                raise SpikeverseError(f"a Conv2d needs (C, H, W) inputs, got shape {shape}")
            add("conv", conv2d(m, shape[1:]))
        elif isinstance(m, nn.Linear):
            add("affine", affine(m.weight, m.bias))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise SpikeverseError(f"Flatten over dims {m.start_dim}..{m.end_dim} has no NIR form here")
            add("flatten", flatten(shape))
        elif isinstance(m, (IFNeuron, LIFNeuron, DSQNLIFNeuron)):
            node = neuron_node(m, shape)
            add(type(node).__name__.lower(), node)
        else:
            raise SpikeverseError(f"layer {type(m).__name__} has no NIR form")
    return nodes, shape


def _scalar(v: Any, what: str) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise SpikeverseError(f"per-neuron {what} values are not exported")
        v = v.item()
    return float(v)


def snn_graph(snn: SpikingQNetwork, meta: dict[str, Any]) -> tuple[nir.NIRGraph, AgentInfo]:
    """The graph of a converted SNN (see the module docstring) and its metadata."""
    v_th, v_init, T = snn.v_th, snn.v_init, snn.timesteps

    def neuron_node(m: nn.Module, shape) -> nir.NIRNode:
        if isinstance(m, IFNeuron):
            return if_neurons(shape, _scalar(m.v_th, "threshold"), reset="subtract", v_init=_scalar(m.v_init, "V(0)"))
        decay = math.exp(-m.dt / m.tau)
        if m.t_ref_steps or m.r != 1.0 or m.v_rest != 0.0:
            raise SpikeverseError("LIF neurons with refractory steps, R != 1 or v_rest != 0 are not exported")
        return lif_neurons(shape, decay=decay, v_threshold=_scalar(m.v_th, "threshold"),
                           v_reset=_scalar(m.v_reset, "v_reset"), reset=m.reset_mode if m.reset_mode == "hard" else
                           "subtract", v_init=_scalar(m.v_init, "V(0)"))

    layers = list(snn.layers)
    integrating = snn.readout in ("membrane", "robust")
    nodes, _ = _stack(layers[:-1] if integrating else layers, snn.input_shape, neuron_node)
    readout = {"count": "sum", "rate": "mean", "membrane": "mean", "robust": "robust"}[snn.readout]
    params = dict(v_init=v_init, v_threshold=v_th) if readout == "robust" else {}
    differs = []
    if snn.neuron == "if":
        differs.append(reset_caveat(v_th))
    if v_init != 0.0:
        differs.append(v_init_caveat(v_init, v_th))
    differs.append(SPIKE_TEST)
    scale = _observation_scale(meta)
    if snn.encoding == "poisson":
        encoding, enc_params = "signed_poisson", dict(scale=snn.input_scale, seed=snn.seed)
        runner = [f"input: Poisson spikes of +-{snn.input_scale:.6g} with probability |x| / {snn.input_scale:.6g} at "
                  f"each step (seed {snn.seed}; encoding signed_poisson)"]
    else:
        encoding, enc_params = "analog", {}
        runner = ["input: the observation is the input current of every step (analog; encoding analog)"]
    if scale not in (None, 1.0):
        runner.append(f"observations: the env's raw ones; the network's scale {scale:g} is folded into the first layer")
    runner.append(f"T = {T} steps per decision, dt = {DT:g} (one spikeverse step per dt)")
    runner.append({
        "count": "readout: Q = the output neurons' spike counts over the window (readout sum)",
        "rate": "readout: Q = the output neurons' spike counts / T (readout mean)",
        "membrane": "readout: Q = (1/T) sum_t of the output layer's current, the membrane of an integrating output "
                    "layer over T (readout mean; the graph's Output is that current at each step)",
        "robust": "readout: Q = (V(0) + sum_t z_t) / (T V_thr), seed 001's robust readout N/T + V(T)/(T V_thr) of an "
                  "output layer reset by subtraction (readout robust; the graph's Output is the current z_t)",
    }[snn.readout])
    if snn.early_decision:
        runner.append("early decision: spikeverse stops a window once its argmax is settled; the graph runs the "
                      "full window, whose decision is the same")
    info = AgentInfo(timesteps=T, dt=DT, encoding=encoding, encoding_params=enc_params, readout=readout,
                     readout_params=params, reset="subtract" if snn.neuron == "if" else "hard",
                     env_id=meta.get("env_id"), agent="snn",
                     observation_shape=list(snn.input_shape), observation_scale=scale, differs=differs,
                     runner=runner, extra=dict(method=meta.get("method"), readout=snn.readout, neuron=snn.neuron,
                                early_decision=snn.early_decision, source=meta.get("source")))
    return sequential_graph(nodes, snn.input_shape, info), info


def dsqn_graph(net: QNetwork, meta: dict[str, Any]) -> tuple[nir.NIRGraph, AgentInfo]:
    """The graph of a DSQN (see the module docstring) and its metadata."""
    spec = net.spec
    if not spec.spiking:
        raise SpikeverseError("a DQN is not a spiking network: convert it first (spikeverse convert), then export "
                              "the SNN")
    if spec.atoms > 1:
        raise SpikeverseError(f"the C51 head 'advantage' ({spec.atoms} atoms per action, a softmax over atoms) has no "
                              "NIR form")
    sp = spec.spiking
    layers = [_copy(m) for m in net.torso]
    first = next(m for m in layers if isinstance(m, (nn.Conv2d, nn.Linear)))
    with torch.no_grad():
        first.weight.mul_(spec.obs_scale)  # W (s x) = (s W) x

    def neuron_node(m: DSQNLIFNeuron, shape) -> nir.NIRNode:
        decay = 1.0 - 1.0 / m.tau
        if abs(lif_input_gain(decay, 1.0 / m.tau) - 1.0) > 1e-12:
            raise SpikeverseError("a DSQN LIF layer's input gain differs from 1")
        return lif_neurons(shape, decay=decay, v_threshold=_scalar(m.v_th, "threshold"),
                           v_reset=_scalar(m.v_reset, "v_reset"), v_leak=_scalar(m.v_reset, "v_reset"),
                           reset="hard" if m.reset_mode == "hard" else "subtract", v_init=_scalar(m.v_init, "V(0)"))

    adv = plain_linear(net.advantage, "advantage")
    head = fold_dueling(plain_linear(net.value, "value"), adv) if net.value is not None else adv
    nodes, _ = _stack([*layers, head], spec.obs_shape, neuron_node)
    differs = [] if sp.reset == "hard" else [reset_caveat(sp.v_th)]
    differs.append(SPIKE_TEST)
    T = int(net.timesteps)
    runner = ["input: the observation is the input current of every step (analog; encoding analog)"]
    if spec.obs_scale != 1.0:
        runner.append(f"observations: the env's raw ones; the network's scale {spec.obs_scale:g} is folded into the "
                      "first layer")
    runner += [f"T = {T} steps per decision, dt = {DT:g} (one spikeverse step per dt)",
              "readout: Q = (1/T) sum_t of the head's output, the non-spiking read-out W (1/T) sum_t S_t + b of "
              "seed 003 (readout mean; the graph's Output is the head's output at each step)"]
    info = AgentInfo(timesteps=T, dt=DT, readout="mean", reset="hard" if sp.reset == "hard" else "subtract",
                     env_id=meta.get("env_id"), agent="dsqn",
                     observation_shape=list(spec.obs_shape), observation_scale=float(spec.obs_scale),
                     differs=differs, runner=runner,
                     extra=dict(arch=spec.arch, tau=sp.tau, v_th=sp.v_th, reset=sp.reset, dueling=spec.dueling,
                                noisy=spec.noisy, weights=meta.get("weights")))
    return sequential_graph(nodes, spec.obs_shape, info), info


def _observation_scale(meta: dict[str, Any]) -> float | None:
    """The observation scale a converted SNN's source network applied (folded into its first layer
    at conversion): a state dict's, as recorded, or the env's (``convert.graph.env_io``)."""
    source = meta.get("source") or {}
    if isinstance(source, dict) and "obs_scale" in source:
        return float(source["obs_scale"])
    return float(env_io(meta["env_id"])[2]) if meta.get("env_id") else None


def _copy(m: nn.Module) -> nn.Module:
    """A torso layer for export: plain copies of the synaptic layers (a noisy one's mean weights)."""
    if isinstance(m, nn.Linear) or type(m).__name__ == "NoisyLinear":
        return plain_linear(m, "torso")
    if isinstance(m, nn.Conv2d):
        c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups)
        with torch.no_grad():
            c.weight.copy_(m.weight)
            c.bias.copy_(m.bias if m.bias is not None else torch.zeros(m.out_channels))
        return c
    return m
