"""A NIR graph as a window simulator: forward Euler at ``dt``, one simulation step per step.

Each node's input x at a step is the sum of its predecessors' outputs at that step (spikes reach
the next node in the step they are emitted in). The nodes, NIR's definitions discretised by
forward Euler at dt:

    Affine   y = W x + b          Linear  y = W x          Scale  y = s x
    Conv2d   y = W * x + b        Flatten (NIR's dims, without the batch dimension)
    I        v <- v + dt R x                                              (output v)
    LI       v <- v + (dt / tau)(v_leak - v + R x)                        (output v)
    IF       v <- v + dt R x;  s = [v > v_threshold];  v <- v_reset where s   (output s)
    LIF      v <- v + (dt / tau)(v_leak - v + R x);  s and the reset as IF
    CubaLIF  i <- i + (dt / tau_syn)(w_in x - i);  v <- v + (dt / tau_mem)(v_leak - v + R i);
             s and the reset as IF

NIR 1.0 has no initial state: every window starts at rest (v = v_leak; v_reset for IF; 0 for I
and for CubaLIF's current). That is ``semantics="nir"``: what the graph alone says, the
hard-reset re-simulation that another NIR simulator would run. ``semantics="spikeverse"``
also honours the neuron metadata of spikeverse's exports (``io.nir.nodes``): reset by
subtraction v <- v - v_threshold s, the initial membrane V(0), and the spike test
s = [v >= v_threshold]; a graph without that metadata runs the same under both.

Stateless nodes run once per window on the whole [T, B, ...] input with time folded into the
batch, or once per decision on a constant input (analog observations): the layers before the
first neuron then cost one pass, as in ``snn.simulate.run_window``. Feed-forward graphs only:
a cycle or a nested graph (a recurrent subgraph) is refused, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import nir
import numpy as np
import torch
import torch.nn.functional as F

from spikeverse.errors import SpikeverseError
from spikeverse.io.nir.nodes import RESET_KEY, SPIKE_TEST_KEY, V_INIT_KEY

SEMANTICS = ("spikeverse", "nir")
STATELESS = (nir.Affine, nir.Linear, nir.Scale, nir.Conv2d, nir.Flatten)
NEURONS = (nir.IF, nir.LIF, nir.LI, nir.I, nir.CubaLIF)
SUPPORTED = ("Input", "Output") + tuple(t.__name__ for t in STATELESS + NEURONS)


@dataclass
class Signal:
    """A node's output over a window: [T, B, ...], or [B, ...] the same at every step (constant)."""

    value: torch.Tensor
    constant: bool

    def window(self, timesteps: int) -> torch.Tensor:
        return self.value.unsqueeze(0).expand(timesteps, *self.value.shape) if self.constant else self.value


def _shape(node: nir.NIRNode, key: str) -> tuple[int, ...] | None:
    t = (node.input_type if key == "input" else node.output_type) or {}
    v = next(iter(t.values()), None) if t else None
    return None if v is None else tuple(int(s) for s in np.asarray(v).reshape(-1))


class _Stateless:
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn

    def __call__(self, x: Signal, timesteps: int) -> Signal:
        if x.constant:
            return Signal(self.fn(x.value), True)
        T, B = x.value.shape[:2]
        y = self.fn(x.value.flatten(0, 1))
        return Signal(y.unflatten(0, (T, B)), False)


class _Neurons:
    """One NIR neuron node: ``integrate(state, x)`` is its Euler step before the spike, then the
    spike test and the reset (spiking nodes) or the membrane as output (I, LI)."""

    def __init__(self, name: str, node: nir.NIRNode, dt: float, semantics: str, dtype, device):
        self.name, self.kind = name, type(node).__name__
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)  # noqa: E731
        md = node.metadata if semantics == "spikeverse" and isinstance(node.metadata, dict) else {}
        md = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in md.items()}
        if isinstance(node, (nir.LIF, nir.LI)):
            tau = np.asarray(node.tau, dtype=np.float64)
            _positive(tau, name, self.kind, "tau")
            self.k, self.r, self.v_leak = t(dt / tau), t(node.r), t(node.v_leak)
            rest = node.v_leak
        elif isinstance(node, nir.CubaLIF):
            for key in ("tau_syn", "tau_mem"):
                _positive(np.asarray(getattr(node, key), dtype=np.float64), name, self.kind, key)
            self.ks = t(dt / np.asarray(node.tau_syn, dtype=np.float64))
            self.km = t(dt / np.asarray(node.tau_mem, dtype=np.float64))
            self.r, self.v_leak, self.w_in = t(node.r), t(node.v_leak), t(node.w_in)
            rest = node.v_leak
        else:  # IF, I: v <- v + dt R x
            self.g = t(dt * np.asarray(node.r, dtype=np.float64))
            rest = getattr(node, "v_reset", 0.0)
        self.spiking = isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF))
        if self.spiking:
            self.v_th, self.v_reset = t(node.v_threshold), t(node.v_reset)
        self.subtract = md.get(RESET_KEY) == "subtract"
        self.inclusive = md.get(SPIKE_TEST_KEY) == ">="
        self.v0 = t(md[V_INIT_KEY] if V_INIT_KEY in md else rest)
        self.dtype, self.device = dtype, device

    def _integrate(self, v: torch.Tensor, i: torch.Tensor | None, x: torch.Tensor):
        if self.kind in ("IF", "I"):
            return v + self.g * x, None
        if self.kind == "CubaLIF":
            i = i + self.ks * (self.w_in * x - i)
            return v + self.km * ((self.v_leak - v) + self.r * i), i
        return v + self.k * ((self.v_leak - v) + self.r * x), None

    def __call__(self, x: Signal, timesteps: int) -> Signal:
        shape = x.value.shape if x.constant else x.value.shape[1:]
        v = torch.broadcast_to(self.v0, shape).clone()
        i = torch.zeros(shape, dtype=self.dtype, device=self.device) if self.kind == "CubaLIF" else None
        out = torch.empty((timesteps, *shape), dtype=self.dtype, device=self.device)
        for step in range(timesteps):
            v, i = self._integrate(v, i, x.value if x.constant else x.value[step])
            if not self.spiking:
                out[step] = v
                continue
            s = (v >= self.v_th) if self.inclusive else (v > self.v_th)
            s = s.to(self.dtype)
            out[step] = s
            v = v - self.v_th * s if self.subtract else torch.where(s > 0, self.v_reset, v)
        return Signal(out, False)


def _positive(a: np.ndarray, name: str, kind: str, key: str) -> None:
    if not (a > 0).all():
        raise SpikeverseError(f"node '{name}' ({kind}) has {key} <= 0, which forward Euler cannot integrate")


def _dims(d: int) -> int:
    """A NIR dimension (no batch) as a dimension of a batched tensor."""
    return int(d) + 1 if int(d) >= 0 else int(d)


def _ints(v) -> tuple[int, ...] | str:
    if isinstance(v, (str, bytes)):
        return v.decode() if isinstance(v, bytes) else v
    return tuple(int(s) for s in np.atleast_1d(np.asarray(v)))


def _stateless(name: str, node: nir.NIRNode, dtype, device) -> _Stateless:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    kind = type(node).__name__
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise SpikeverseError(f"node '{name}' ({kind}) has a weight of shape {w.shape}; only 2-d weights are "
                                  "supported")
        W, b = t(w), (t(node.bias) if isinstance(node, nir.Affine) else None)
        return _Stateless(lambda x: F.linear(x, W, b))
    if isinstance(node, nir.Scale):
        s = t(node.scale)
        return _Stateless(lambda x: x * s)
    if isinstance(node, nir.Conv2d):
        W, b = t(node.weight), t(node.bias)
        stride, padding, dilation = _ints(node.stride), _ints(node.padding), _ints(node.dilation)
        groups = int(np.asarray(node.groups))
        return _Stateless(lambda x: F.conv2d(x, W, b, stride, padding, dilation, groups))
    start, end = _dims(np.asarray(node.start_dim)), _dims(np.asarray(node.end_dim))  # Flatten
    return _Stateless(lambda x: torch.flatten(x, start, end))


class GraphNetwork:
    """A feed-forward NIR graph, simulated window by window (see the module docstring).

    ``run(x, timesteps, constant)``: x [B, *input_shape] (the same input at every step) or
    [T, B, *input_shape]; returns the Output node's signal [T, B, *output_shape]."""

    def __init__(self, graph: nir.NIRGraph, *, dt: float, semantics: str = "spikeverse",
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", where: str = "graph"):
        if semantics not in SEMANTICS:
            raise SpikeverseError(f"unknown semantics {semantics!r} (choose from {', '.join(SEMANTICS)})")
        if not dt > 0:
            raise SpikeverseError(f"dt must be > 0, got {dt}")
        self.semantics, self.dt = semantics, float(dt)
        for name, node in graph.nodes.items():
            if isinstance(node, nir.NIRGraph):
                raise SpikeverseError(f"{where}: node '{name}' is a nested graph (a recurrent subgraph?), which "
                                      "spikeverse does not simulate (feed-forward graphs only)")
            if type(node).__name__ not in SUPPORTED:
                raise SpikeverseError(f"{where}: node '{name}' is a NIR {type(node).__name__}, which spikeverse does "
                                      f"not simulate (supported: {', '.join(SUPPORTED)})")
        inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
        outputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise SpikeverseError(f"{where}: a policy graph needs one Input and one Output node, found "
                                  f"{len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.order, self.preds = _topological(graph, self.input, where)
        if self.output not in self.order:
            raise SpikeverseError(f"{where}: the Output node '{self.output}' is not reached from the Input")
        self.input_shape = _shape(graph.nodes[self.input], "input")
        self.output_shape = _shape(graph.nodes[self.output], "output")
        self.ops: dict[str, Callable[[Signal, int], Signal]] = {}
        for name in self.order:
            node = graph.nodes[name]
            if isinstance(node, STATELESS):
                self.ops[name] = _stateless(name, node, dtype, device)
            elif isinstance(node, NEURONS):
                self.ops[name] = _Neurons(name, node, self.dt, semantics, dtype, device)
            else:  # Input, Output
                self.ops[name] = lambda x, T: x
        self.dtype, self.device = dtype, torch.device(device)

    def run(self, x: torch.Tensor, timesteps: int, constant: bool) -> torch.Tensor:
        signals: dict[str, Signal] = {}
        for name in self.order:
            if name == self.input:
                sig = Signal(x, constant)
            else:
                ins = [signals[p] for p in self.preds[name]]
                if len(ins) == 1:
                    sig = ins[0]
                elif all(s.constant for s in ins):
                    sig = Signal(sum(s.value for s in ins), True)
                else:
                    sig = Signal(sum(s.window(timesteps) for s in ins), False)
            signals[name] = self.ops[name](sig, timesteps)
        return signals[self.output].window(timesteps)


def _topological(graph: nir.NIRGraph, start: str, where: str) -> tuple[list[str], dict[str, list[str]]]:
    """Nodes reachable from ``start`` in an order where every node follows its predecessors, and
    each node's predecessors; a cycle is refused, naming its nodes."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
        preds[b].append(a)
    reach, stack = {start}, [start]
    while stack:
        for b in succ[stack.pop()]:
            if b not in reach:
                reach.add(b)
                stack.append(b)
    missing = {n: [p for p in preds[n] if p not in reach] for n in reach}
    for n, p in missing.items():
        if p:
            raise SpikeverseError(f"{where}: node '{n}' also takes input from {p}, which the Input does not reach")
    indeg = {n: len(preds[n]) for n in reach}
    order, ready = [], [start]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for b in succ[n]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    if len(order) != len(reach):
        cycle = sorted(set(reach) - set(order))
        raise SpikeverseError(f"{where}: the graph has a cycle through {cycle} (recurrent graphs are not supported)")
    return order, {n: preds[n] for n in order}
