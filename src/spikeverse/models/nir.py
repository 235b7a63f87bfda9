"""The task SNNs (evolved / R-STDP CartPole, evolved Mountain Car) as NIR graphs.

Both are two layers of LIF neurons (tau 10 ms, v_rest = v_reset = 0, V_th 1, hard reset, R = tau,
dt 1 ms) integrated exactly by ``snn.neurons.lif_step``: v <- d v + (tau/dt)(1 - d) q with
d = e^{-dt/tau} and q the charge of the step's input spikes. In NIR (``io.nir.nodes``): LIF with
tau_NIR = DT / (1 - d), R = 1, and the gain tau/dt folded into the ``Linear`` weights before it,
so that forward Euler at DT is that step (one model millisecond per DT). Weights only (Linear,
no biases), as the networks have.

- CartPole (``models.cartpole_snn``): Input (80 receptive fields) -> Linear -> LIF (hidden) ->
  Linear -> LIF (2 x ``motor`` neurons) -> Linear (ones over each population) -> Output: each
  population's spikes per step; Q = their sum over the window (the ``sum`` readout), as
  ``SNNPolicy.q_values``. The population code and its regular spike trains are the input
  encoding (``gaussian_regular``, in the metadata).
- Mountain Car (``models.mountaincar_snn``, neuron ``lif``): Input (2 x ``bins`` one-hot bins)
  -> Linear -> LIF (hidden) -> Linear -> LIF (3 outputs) -> Output; the action is the output with
  most spikes, ties by the network's ``tie`` rule ("right": the last, "left": the first), given
  one-hot as ``MountainCarPolicy.q_values``. ``iaf_psc_alpha`` neurons (alpha-shaped currents:
  NIR has none) and L2L's tie rule ``none`` are refused.

Simulated in float64, as the networks are.
"""

from __future__ import annotations

import math
from typing import Any

import nir
import numpy as np
import torch

from spikeverse.errors import SpikeverseError
from spikeverse.io.nir.info import AgentInfo
from spikeverse.io.nir.nodes import DT, lif_input_gain, lif_neurons, linear, sequential_graph
from spikeverse.models import cartpole_snn as cp
from spikeverse.models import mountaincar_snn as mc
from spikeverse.models.cartpole_snn import SNNPolicy
from spikeverse.models.mountaincar_snn import MountainCarPolicy

SPIKE_TEST = ("spike test: spikeverse fires at v >= V_thr, NIR's neurons at v > V_thr (this differs only where a "
              "membrane lands exactly on the threshold)")


def _lif_layer(n: int, tau: float, dt: float, v_th: float) -> tuple[nir.LIF, float]:
    """The LIF node of lif_step(tau, dt, R = tau, hard reset) and the gain its input weights take."""
    decay = math.exp(-dt / tau)
    gain = lif_input_gain(decay, (tau / dt) * (1.0 - decay))
    return lif_neurons((n,), decay=decay, v_threshold=v_th, reset="hard", v_init=0.0, dtype=np.float64), gain


def _runner(encoding: str, T: int, dt_ms: float, readout: str) -> list[str]:
    return [encoding, f"T = {T} steps of {dt_ms:g} ms per decision (the network's window), exported as dt = {DT:g} "
                      "per step", readout]


def cartpole_graph(policy: SNNPolicy, meta: dict[str, Any]) -> tuple[nir.NIRGraph, AgentInfo]:
    """The CartPole SNN of an ES or R-STDP run (see the module docstring)."""
    net = policy.net
    hidden, g_h = _lif_layer(net.hidden, net.tau, net.dt, net.v_th)
    motor, g_m = _lif_layer(net.n_motor, net.tau, net.dt, net.v_th)
    pool = np.kron(np.eye(2), np.ones((1, net.motor)))  # [2, 2 motor]: each population's spikes
    nodes = [("linear0", linear(policy.w_ih * g_h, np.float64)), ("lif0", hidden),
             ("linear1", linear(policy.w_hm * g_m, np.float64)), ("lif1", motor),
             ("populations", linear(torch.as_tensor(pool), np.float64))]
    per_step = net.input_per_step
    info = AgentInfo(
        timesteps=net.window, dt=DT, encoding="gaussian_regular",
        encoding_params=dict(n=net.n_per_var, low=list(cp.LOW), high=list(cp.HIGH), per_step=per_step),
        readout="sum", dtype="float64", reset="hard", env_id=meta.get("env_id", cp.ENV_ID), agent=cp.KIND,
        observation_shape=[4], differs=[SPIKE_TEST],
        runner=_runner(f"input: each of the 4 observations by {net.n_per_var} Gaussian receptive fields over "
                       f"[{', '.join(f'{v:g}' for v in cp.LOW)}] .. [{', '.join(f'{v:g}' for v in cp.HIGH)}], "
                       f"each firing a regular train of r x {per_step:g} spikes per step (encoding gaussian_regular)",
                       net.window, net.dt, "readout: Q = each motor population's spikes over the window (readout "
                       "sum); action = the population with more, ties to the first (left)"),
        extra=dict(network=net.to_dict(), method=(meta.get("config") or {}).get("method") if isinstance(
            meta.get("config"), dict) else None))
    return sequential_graph(nodes, (net.n_inputs,), info), info


def mountaincar_graph(policy: MountainCarPolicy, meta: dict[str, Any]) -> tuple[nir.NIRGraph, AgentInfo]:
    """The evolved Mountain Car SNN of a GA run (see the module docstring)."""
    net = policy.net
    if net.neuron != "lif":
        raise SpikeverseError(f"Mountain Car network with neuron={net.neuron!r}: its alpha-shaped synaptic currents "
                              "have no NIR node (CubaLIF's are exponential); only neuron='lif' is exported")
    if net.tie not in ("right", "left"):
        raise SpikeverseError(f"Mountain Car network with tie={net.tie!r} (L2L's rule) has no NIR readout here; "
                              "only tie='right' or 'left' is exported")
    w_in, w_out = net.unpack(policy.genome[None])
    p = dict(tau=mc.LIF["tau"], dt=net.dt, v_th=mc.LIF["v_th"])
    hidden, g = _lif_layer(net.hidden, p["tau"], p["dt"], p["v_th"])
    out, _ = _lif_layer(len(mc.ACTIONS), p["tau"], p["dt"], p["v_th"])
    nodes = [("linear0", linear(w_in[0].T * g, np.float64)), ("lif0", hidden),
             ("linear1", linear(w_out[0].T * g, np.float64)), ("lif1", out)]
    T = net.window_steps
    tie = "last" if net.tie == "right" else "first"
    info = AgentInfo(
        timesteps=T, dt=DT, encoding="bins_periodic",
        encoding_params=dict(bins=net.bins, low=list(mc.LOW), high=list(mc.HIGH), period=net.input_period_steps),
        readout="sum", ties=tie, q_values="one_hot", dtype="float64", reset="hard",
        env_id=meta.get("env_id", mc.ENV_ID),
        agent=mc.KIND, observation_shape=[2], differs=[SPIKE_TEST],
        runner=_runner(f"input: position and velocity each in {net.bins} one-hot bins, the active inputs firing at "
                       f"steps 0, p, 2p, ... with p = {net.input_period_steps} (encoding bins_periodic)", T, net.dt,
                       f"readout: action = the output with most spikes over the window, ties to the "
                       f"{net.tie} (readout sum, ties {tie}, Q one-hot)"),
        extra=dict(network=net.to_dict()))
    return sequential_graph(nodes, (net.n_inputs,), info), info
