"""NIR nodes of spikeverse's layers and neurons: the mapping from discrete steps to NIR's ODEs.

NIR's neurons are continuous-time equations; spikeverse's neurons update once per simulation
step. An exported graph is meant to be run with forward Euler at the step ``DT`` (graph metadata
``dt``), one spikeverse step per step of ``DT``:

    IF   dv/dt = R I                       ->  v <- v + DT R I
    LIF  tau dv/dt = (v_leak - v) + R I    ->  v <- v + (DT / tau) (v_leak - v + R I)

and every parameter is chosen so that this Euler step is exactly spikeverse's step:

- IF (converted SNNs: v <- v + z): R = 1 / DT, so that one step adds the input current z;
- LIF, any discrete form v <- a v + b I + c (the DSQN's, seed 003: a = 1 - 1/tau_s, b = 1/tau_s,
  c = V_r / tau_s; the exact exponential step of ``snn.neurons.lif_step``: a = e^{-dt/tau},
  b = R (1 - a), c = v_rest (1 - a)): tau = DT / (1 - a), v_leak = c / (1 - a), and R = 1 with
  the gain b / (1 - a) folded into the weights of the layer before (:func:`lif_input_gain`).
  R = 1 in every exported LIF because Norse's importer ignores R (snnTorch's honours it).

``DT`` = 1e-4 is the step snnTorch's importer assumes (beta = 1 - 1e-4 / tau); Norse's
``from_nir`` takes it as ``dt``. Thresholds are NIR's ``v_threshold``, resets ``v_reset``; NIR's
IF and LIF reset to v_reset (a hard reset) and fire at v > v_threshold. Where spikeverse does
otherwise (reset by subtraction, v >= V_thr, a non-zero initial membrane), the node's metadata
says so (:func:`spikeverse_semantics`) and ``io.nir.simulate`` honours it on request.

Shapes are NIR's, without the batch dimension: a Flatten of (C, H, W) has start_dim 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import nir
import numpy as np
import torch
from torch import nn

from spikeverse.errors import SpikeverseError
from spikeverse.io.nir.info import AgentInfo

DT = 1e-4
SPIKE_TESTS = (">=", ">")  # spikeverse fires at v >= V_thr; NIR's definition is v > V_thr
# the node metadata keys of spikeverse's semantics where NIR's differ
RESET_KEY, V_INIT_KEY, SPIKE_TEST_KEY = "spikeverse_reset", "spikeverse_v_init", "spikeverse_spike_test"


def _array(x, dtype=np.float32) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(a, dtype=dtype)


def affine(weight, bias, dtype=np.float32) -> nir.Affine:
    """y = W x + b (W [out, in])."""
    return nir.Affine(weight=_array(weight, dtype), bias=_array(bias, dtype))


def linear(weight, dtype=np.float32) -> nir.Linear:
    """y = W x (W [out, in])."""
    return nir.Linear(weight=_array(weight, dtype))


def conv2d(conv: nn.Conv2d, input_hw: Sequence[int]) -> nir.Conv2d:
    """A torch Conv2d (numeric zero padding) as NIR's Conv2d on inputs of spatial size ``input_hw``."""
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise SpikeverseError(f"Conv2d with padding {conv.padding!r} ({conv.padding_mode}) has no NIR form here")
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return nir.Conv2d(input_shape=tuple(int(s) for s in input_hw), weight=_array(conv.weight),
                      stride=tuple(conv.stride), padding=tuple(conv.padding), dilation=tuple(conv.dilation),
                      groups=int(conv.groups), bias=_array(bias))


def flatten(input_shape: Sequence[int]) -> nir.Flatten:
    """All of a (C, H, W) input (no batch dimension) in one vector: start_dim 0, end_dim -1."""
    return nir.Flatten(input_type={"input": np.array(list(input_shape))}, start_dim=0, end_dim=-1)


def spikeverse_semantics(reset: str, v_init: float, spike_test: str = ">=") -> dict:
    """Node metadata: spikeverse's reset ("hard" or "subtract"), initial membrane V(0) and spike
    test, for a simulator that honours them (``io.nir.simulate``, semantics "spikeverse")."""
    if reset not in ("hard", "subtract") or spike_test not in SPIKE_TESTS:
        raise SpikeverseError(f"unknown neuron semantics reset={reset!r}, spike test {spike_test!r}")
    return {RESET_KEY: reset, V_INIT_KEY: float(v_init), SPIKE_TEST_KEY: spike_test}


def if_neurons(shape: Sequence[int], v_threshold: float, *, reset: str, v_init: float,
               dtype=np.float32) -> nir.IF:
    """IF neurons v <- v + z (R = 1/DT), threshold V_thr, v_reset 0; spikeverse's reset and
    V(0) in the metadata."""
    shape = tuple(int(s) for s in shape)
    return nir.IF(r=np.full(shape, 1.0 / DT, dtype), v_threshold=np.full(shape, v_threshold, dtype),
                  v_reset=np.zeros(shape, dtype), metadata=spikeverse_semantics(reset, v_init))


def lif_input_gain(decay: float, input_gain: float) -> float:
    """The factor b / (1 - a) that the input weights of a LIF layer v <- a v + b I + c take, so
    that the exported LIF has R = 1."""
    return float(input_gain) / (1.0 - float(decay))


def lif_neurons(shape: Sequence[int], *, decay: float, v_threshold: float, v_reset: float = 0.0,
                v_leak: float = 0.0, reset: str = "hard", v_init: float | None = None,
                dtype=np.float32) -> nir.LIF:
    """LIF neurons whose Euler step at DT is v <- decay v + (1 - decay)(v_leak + I):
    tau = DT / (1 - decay), R = 1. ``v_init`` None: at rest (v_leak)."""
    if not 0.0 <= decay < 1.0 or not math.isfinite(decay):
        raise SpikeverseError(f"a LIF decay per step must be in [0, 1), got {decay}")
    shape = tuple(int(s) for s in shape)
    full = lambda v: np.full(shape, v, dtype)  # noqa: E731
    return nir.LIF(tau=full(DT / (1.0 - decay)), r=full(1.0), v_leak=full(v_leak), v_threshold=full(v_threshold),
                   v_reset=full(v_reset),
                   metadata=spikeverse_semantics(reset, v_leak if v_init is None else v_init))


def sequential_graph(nodes: Sequence[tuple[str, nir.NIRNode]], input_shape: Sequence[int],
                     info: AgentInfo) -> nir.NIRGraph:
    """Input -> nodes in order -> Output, with ``info`` as the graph metadata (types checked by
    ``nir``: every node's input shape must be its predecessor's output)."""
    names = [n for n, _ in nodes]
    if len(set(names)) != len(names) or {"input", "output"} & set(names):
        raise SpikeverseError(f"node names must be unique and not input/output: {names}")
    all_nodes = {"input": nir.Input(input_type={"input": np.array([int(s) for s in input_shape])}), **dict(nodes)}
    order = ["input", *names]
    last = nodes[-1][1]
    all_nodes["output"] = nir.Output(output_type={"output": np.array(list(last.output_type["output"]))})
    edges = list(zip(order, order[1:] + ["output"]))
    try:
        return nir.NIRGraph(nodes=all_nodes, edges=edges, metadata=info.to_metadata())
    except ValueError as e:
        raise SpikeverseError(f"the exported graph is inconsistent: {str(e).splitlines()[0]}") from None
