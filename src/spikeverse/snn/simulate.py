"""Run a stack of layers over a window of T time steps (SPEC R-SNN-SIM).

The stack is a sequence of modules; *stateful* ones (spiking neurons: anything with a
``multi_step`` method) keep a membrane potential across steps, *stateless* ones (Conv2d,
Linear, Flatten, pooling, ...) do not. A window runs segment by segment:
- consecutive stateless layers run with time folded into the batch, [T, B, ...] -> [T*B, ...]
  -> [T, B, ...] (one big GEMM instead of T small ones; on CPU in chunks of time steps, the
  whole network per chunk, which keeps the working set in cache);
- a stateful layer runs its own tight loop over T (``multi_step``);
- with a constant (analog) input the stateless layers before the first neuron run once on
  [B, ...] and the result is broadcast over T without a copy (seed 001's analog input current).
Monitors record per layer spike counts, firing rates, final (and optionally full) membrane
potentials, and synaptic operations: each spike of a layer costs one accumulate per outgoing
synapse it reaches in the next layer (spikes x fan-out, counted exactly for convolutions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from spikeverse.errors import SpikeverseError


def check_timesteps(t: int) -> int:
    """A window length T: an integer >= 1."""
    if int(t) != t or t < 1:
        raise SpikeverseError(f"timesteps must be an integer >= 1, got {t}")
    return int(t)


def is_stateful(m: nn.Module) -> bool:
    return hasattr(m, "multi_step")


def split_segments(layers: Sequence[nn.Module]) -> list[tuple[bool, list[nn.Module]]]:
    """Group layers into runs of stateless modules and single stateful ones: [(stateful, [modules])]."""
    segments: list[tuple[bool, list[nn.Module]]] = []
    for m in layers:
        if is_stateful(m):
            segments.append((True, [m]))
        elif segments and not segments[-1][0]:
            segments[-1][1].append(m)
        else:
            segments.append((False, [m]))
    return segments


def _fold(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``fn`` to [T, B, ...] with time folded into the batch."""
    T, B = x.shape[:2]
    y = fn(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


# On CPU the window runs depth-first in chunks of time steps whose first-layer activations take
# about CPU_CHUNK_BYTES: every layer's working set then stays in the last-level cache, where
# folding all T steps at once (thousands of images per convolution) is memory-bound. Measured on
# the Nature CNN, T=100, B=8 (410 KB per step after the first convolution; 32 MiB L3): chunks of
# 8-24 steps run the window in 0.60-0.62 of T ANN forwards, 32 steps in 0.81, the whole window
# at once in 0.87. On CUDA the whole window is one chunk.
CPU_CHUNK_BYTES = 8 << 20


def default_chunk(device: torch.device, step_bytes: int, timesteps: int) -> int:
    """Time steps per chunk: the whole window on GPU; on CPU, about CPU_CHUNK_BYTES of the
    widest activation (``step_bytes`` per time step)."""
    if device.type != "cpu":
        return timesteps
    return max(1, min(timesteps, CPU_CHUNK_BYTES // max(step_bytes, 1)))


def synaptic_ops(layer: nn.Module, spike_counts: torch.Tensor) -> torch.Tensor:
    """Accumulates triggered in ``layer`` by input spike counts [B, ...] (per sample): spikes x fan-out.

    Linear: every input spike reaches out_features synapses. Conv2d: a spike at (c, i, j) reaches
    the out_channels x (kernel positions that cover (i, j)) synapses; counted exactly (borders and
    strides included) as a convolution of the count map with a kernel of ones.
    """
    if isinstance(layer, nn.Linear):
        return spike_counts.flatten(1).sum(1) * layer.out_features
    if isinstance(layer, nn.Conv2d):
        ones = torch.ones(1, layer.in_channels // layer.groups, *layer.kernel_size,
                          dtype=spike_counts.dtype, device=spike_counts.device)
        if layer.groups != 1:
            raise NotImplementedError("synaptic-operation counting for grouped convolutions")
        reach = F.conv2d(spike_counts, ones, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        return reach.flatten(1).sum(1) * layer.out_channels
    return torch.zeros(spike_counts.shape[0], dtype=spike_counts.dtype, device=spike_counts.device)


def macs(layer: nn.Module, in_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one ANN forward through ``layer`` for one sample of shape ``in_shape``."""
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    if isinstance(layer, nn.Conv2d):
        with torch.no_grad():
            out = layer(torch.zeros(1, *in_shape, device=layer.weight.device, dtype=layer.weight.dtype))
        k = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        return int(out[0].numel() * k)
    return 0


def _first_synaptic_layer(modules: Sequence[nn.Module]) -> nn.Module | None:
    return next((m for m in modules if isinstance(m, (nn.Linear, nn.Conv2d))), None)


@dataclass
class WindowRecord:
    """What a monitor saw over one window, per stateful layer (in order)."""

    timesteps: int
    spike_counts: list[torch.Tensor] = field(default_factory=list)  # [B, ...] spikes per neuron
    final_v: list[torch.Tensor] = field(default_factory=list)  # [B, ...] membrane at the end
    v_traces: list[torch.Tensor] = field(default_factory=list)  # [T, B, ...] if requested
    synops: list[torch.Tensor] = field(default_factory=list)  # [B] accumulates caused by each layer's spikes
    input_synops: torch.Tensor | None = None  # [B], set by callers that feed input spikes (spikes x fan-out)

    def firing_rates(self) -> list[torch.Tensor]:
        """Mean spikes per neuron per step, per sample: [B] for each layer."""
        return [c.flatten(1).mean(1) / self.timesteps for c in self.spike_counts]

    def total_synops(self) -> torch.Tensor:
        return torch.stack(self.synops).sum(0) if self.synops else torch.zeros(0)


def run_window(
    layers: Sequence[nn.Module],
    x: torch.Tensor,
    timesteps: int | None = None,
    *,
    constant_input: bool = True,
    record: bool = False,
    record_traces: bool = False,
    chunk: int | None = None,
    reset: bool = True,
) -> tuple[torch.Tensor, WindowRecord | None]:
    """Simulate ``layers`` for one window; returns (outputs [T, B, ...], record or None).

    ``constant_input=True``: ``x`` is [B, ...], the same input current at every step (T =
    ``timesteps``). Otherwise ``x`` is already time-first [T, B, ...] (e.g. Poisson spikes).
    Neuron state is reset at the start of the window and carried across chunks of ``chunk``
    time steps (default :func:`default_chunk`); the result does not depend on the chunking.
    ``reset=False`` continues from the neurons' current state (a window run in pieces); the
    record then covers this piece only.
    """
    segments = split_segments(layers)
    for stateful, mods in segments:
        if stateful and reset:
            mods[0].reset()
    first = 0
    if constant_input:
        if timesteps is None or timesteps < 1:
            raise ValueError("timesteps must be >= 1 for a constant input")
        T, h0 = timesteps, x
        if segments and not segments[0][0]:
            for m in segments[0][1]:
                h0 = m(h0)
            first = 1
        window = lambda t0, t1: h0.unsqueeze(0).expand(t1 - t0, *h0.shape)  # noqa: E731
    else:
        T = x.shape[0]
        window = lambda t0, t1: x[t0:t1]  # noqa: E731
    probe = window(0, 1)
    if chunk is None and torch.is_grad_enabled():
        chunk = T  # training (BPTT): one chunk, so that whole-window neuron kernels see all of it
    step = chunk or default_chunk(x.device, probe.numel() * probe.element_size(), T)
    neurons = [k for k in range(first, len(segments)) if segments[k][0]]
    counts: dict[int, torch.Tensor] = {}
    traces: dict[int, list[torch.Tensor]] = {k: [] for k in neurons}
    outs = []
    for t0 in range(0, T, step):
        h = window(t0, min(T, t0 + step))
        for k in range(first, len(segments)):
            stateful, mods = segments[k]
            if not stateful:
                h = _fold(mods[0] if len(mods) == 1 else nn.Sequential(*mods), h)
                continue
            if record_traces:
                h, trace = mods[0].multi_step(h, record_v=True)
                traces[k].append(trace)
            else:
                h = mods[0].multi_step(h)
            if record:
                c = h.detach().sum(0)
                counts[k] = counts[k] + c if k in counts else c
        outs.append(h)
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    if not record:
        return out, None
    rec = WindowRecord(T)
    for k in neurons:
        neuron = segments[k][1][0]
        rec.spike_counts.append(counts[k])
        rec.final_v.append(neuron.v.detach().clone())
        if record_traces:
            rec.v_traces.append(torch.cat(traces[k]))
        nxt = _first_synaptic_layer(segments[k + 1][1]) if k + 1 < len(segments) and not segments[k + 1][0] else None
        if nxt is not None:
            rec.synops.append(synaptic_ops(nxt, _shape_for(nxt, counts[k])))
    return out, rec


def _shape_for(layer: nn.Module, counts: torch.Tensor) -> torch.Tensor:
    """Spike counts in the shape the next synaptic layer reads (flattened for Linear)."""
    return counts.flatten(1) if isinstance(layer, nn.Linear) else counts
