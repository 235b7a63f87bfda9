"""NEST's ``iaf_psc_alpha`` (SPEC R-SNN-ALPHA; the neuron of seed 002 sec. 3.1): a
current-based LIF neuron with alpha-shaped synaptic currents, integrated exactly per step.

Model (NEST names and units: ms, mV, pA, pF):
    C_m dV/dt = -(C_m / tau_m)(V - E_L) + I_ex + I_in + I_e,
    dI/dt = dI' - I / tau_syn,   d(dI')/dt = -dI' / tau_syn   (per synapse type),
a spike of weight w (pA) adding w e / tau_syn to dI' (so the current peaks at w, tau_syn after
the spike); positive weights go to the excitatory, negative ones to the inhibitory synapse.
V >= V_th emits a spike and clamps V to V_reset for t_ref.

Exact integration (Rotter & Diesmann 1999): (dI', I, V - E_L) evolves linearly, so one step h
is a fixed 3x3 propagator matrix, here ``matrix_exp`` of the system matrix (exact also when
tau_m = tau_syn). The update order is that of NEST's ``iaf_psc_alpha::update``: V from the old
currents (unless refractory, then the refractory count goes down), then the currents, then the
spikes delivered in this step are added to dI', then the threshold check and reset, and last
the device current delivered in this step becomes the input current ``i_0`` of the next step
(NEST's ``y0``). Time stamps follow NEST: a spike in step k is at (k + 1) h (the end of the step
in which V crossed V_th), the state after step k is the multimeter's sample at (k + 1) h
(sampled every ``interval`` ms: at interval, 2 interval, ...), and a spike or current sent in
step k with a delay of d steps is delivered in step k + d.

Two kinds of DC input, as in NEST: the ``I_e`` parameter acts from step 0 (t = 0); a
``dc_generator`` (seed 002) sends its current from step 0 over a connection with a delay (NEST's
default 1.0 ms, d steps), so it is delivered in step d and acts on V from step d + 1, i.e. from
t = delay + h. :func:`dc_generator_current` builds that input; :func:`two_neuron_experiment`
uses it by default (``device_delay=1.0``), and ``device_delay=0`` gives the ``I_e`` variant.
Checked against NEST 3.10 by ``benchmarks/nest_alpha.py`` (equal spike times, V_m to rounding).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError
from spikeverse.snn.neurons import check_dt, sample_times, time_grid

Scalar = Union[float, Tensor]


@dataclass(frozen=True)
class AlphaParams:
    """``iaf_psc_alpha`` parameters with NEST's defaults; ``I_e`` may be a per-neuron tensor."""

    C_m: float = 250.0  # pF
    tau_m: float = 10.0  # ms
    tau_syn_ex: float = 2.0  # ms
    tau_syn_in: float = 2.0  # ms
    t_ref: float = 2.0  # ms
    E_L: float = -70.0  # mV
    V_th: float = -55.0  # mV
    V_reset: float = -70.0  # mV
    I_e: Scalar = 0.0  # pA

    def check(self) -> None:
        """Raise SpikeverseError for parameters NEST would reject."""
        if min(self.C_m, self.tau_m, self.tau_syn_ex, self.tau_syn_in) <= 0:
            raise SpikeverseError("C_m, tau_m and tau_syn must be > 0")
        if self.t_ref < 0:
            raise SpikeverseError(f"t_ref must be >= 0 ms, got {self.t_ref}")
        if self.V_reset >= self.V_th:
            raise SpikeverseError(f"V_reset ({self.V_reset} mV) must be below V_th ({self.V_th} mV)")


class SynapsePropagator(NamedTuple):
    """One step of an alpha synapse and its effect on V (entries of the 3x3 propagator)."""

    p11: float  # dI' -> dI'  (= p22 = e^{-h/tau_syn})
    p21: float  # dI' -> I
    p22: float  # I -> I
    p31: float  # dI' -> V
    p32: float  # I -> V
    kick: float  # dI' jump per pA of spike weight: e / tau_syn (NEST's PSCInitialValue)


class AlphaPropagators(NamedTuple):
    """All constants of one step h: both synapses, V's own decay and the refractory count."""

    ex: SynapsePropagator
    inh: SynapsePropagator
    p30: float  # constant current -> V: (tau_m / C_m)(1 - e^{-h/tau_m})
    expm1_m: float  # e^{-h/tau_m} - 1 (V <- V + expm1_m V, as NEST for precision)
    ref_steps: int  # t_ref in steps


def _synapse_propagator(tau_syn: float, tau_m: float, c_m: float, h: float) -> SynapsePropagator:
    """exp(A h) for d/dt (dI', I, V) = A (dI', I, V), A = [[-1/ts, 0, 0], [1, -1/ts, 0],
    [0, 1/C_m, -1/tau_m]]."""
    a = torch.tensor([[-1.0 / tau_syn, 0.0, 0.0],
                      [1.0, -1.0 / tau_syn, 0.0],
                      [0.0, 1.0 / c_m, -1.0 / tau_m]], dtype=torch.float64)
    p = torch.linalg.matrix_exp(a * h).tolist()
    return SynapsePropagator(p[0][0], p[1][0], p[1][1], p[2][0], p[2][1], math.e / tau_syn)


def alpha_propagators(params: AlphaParams, dt: float) -> AlphaPropagators:
    """The exact one-step propagators of ``iaf_psc_alpha`` at resolution ``dt`` (ms)."""
    params.check()
    check_dt(dt)
    expm1_m = math.expm1(-dt / params.tau_m)
    return AlphaPropagators(
        ex=_synapse_propagator(params.tau_syn_ex, params.tau_m, params.C_m, dt),
        inh=_synapse_propagator(params.tau_syn_in, params.tau_m, params.C_m, dt),
        p30=-params.tau_m / params.C_m * expm1_m,
        expm1_m=expm1_m,
        ref_steps=round(params.t_ref / dt))


class AlphaState(NamedTuple):
    """State of a batch of neurons (any shape); ``y`` = V_m - E_L (mV)."""

    y: Tensor
    di_ex: Tensor  # pA/ms
    i_ex: Tensor  # pA
    di_in: Tensor
    i_in: Tensor
    refractory: Tensor  # remaining refractory steps (int64)
    i_0: Tensor  # pA, device current of this step (NEST's y0: delivered in the previous step)


def alpha_state(shape: tuple[int, ...], *, device=None, dtype=torch.float64) -> AlphaState:
    """Neurons at rest (V_m = E_L, NEST's initial value) with no synaptic or device current."""
    z = torch.zeros(shape, device=device, dtype=dtype)
    return AlphaState(z, z, z, z, z, torch.zeros(shape, device=device, dtype=torch.int64), z)


def _synapse(p: SynapsePropagator, di: Tensor, i: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Propagate (dI', I) by one step, then add the spikes of weight w delivered in it."""
    return p.p11 * di + p.kick * w, p.p21 * di + p.p22 * i


def iaf_psc_alpha_step(state: AlphaState, w_ex: Tensor, w_in: Tensor, prop: AlphaPropagators,
                       params: AlphaParams, current: Optional[Tensor] = None
                       ) -> tuple[Tensor, AlphaState]:
    """One exact step of ``iaf_psc_alpha`` (NEST's update order). ``w_ex`` (>= 0) and ``w_in``
    (<= 0) are the summed weights (pA) of the spikes delivered in this step; ``current`` (pA,
    None = 0) the device current delivered in this step, which acts on V from the next step.
    Returns (spikes as a bool tensor, new state)."""
    y, di_ex, i_ex, di_in, i_in, refr, i_0 = state
    free = refr == 0
    y_new = (prop.p30 * (i_0 + params.I_e) + prop.ex.p31 * di_ex + prop.ex.p32 * i_ex
             + prop.inh.p31 * di_in + prop.inh.p32 * i_in + prop.expm1_m * y + y)
    y = torch.where(free, y_new, y)
    refr = torch.where(free, refr, refr - 1)
    di_ex, i_ex = _synapse(prop.ex, di_ex, i_ex, w_ex)
    di_in, i_in = _synapse(prop.inh, di_in, i_in, w_in)
    spikes = y >= params.V_th - params.E_L
    y = torch.where(spikes, torch.full_like(y, params.V_reset - params.E_L), y)
    refr = torch.where(spikes, prop.ref_steps, refr)
    i_0 = torch.zeros_like(y) if current is None else torch.broadcast_to(current, y.shape)
    return spikes, AlphaState(y, di_ex, i_ex, di_in, i_in, refr, i_0)


def _multiple(interval: float, dt: float) -> Optional[int]:
    k = round(interval / dt)
    return k if k >= 1 and abs(k * dt - interval) <= 1e-9 * max(1.0, interval) else None


def steps_of(interval: float, dt: float, what: str = "interval") -> int:
    """``interval`` (ms) as a whole number (>= 1) of steps of ``dt``; NEST rejects other values."""
    k = _multiple(interval, dt)
    if k is None:
        raise SpikeverseError(f"{what} ({interval} ms) must be a positive multiple of dt ({dt} ms)")
    return k


def dc_generator_current(amplitude: Tensor, steps: int, dt: float, delay: float = 1.0) -> Tensor:
    """The input [steps, N] (pA) of NEST ``dc_generator``s of per-neuron ``amplitude`` [N],
    started at t = 0 and connected with ``delay`` (ms, NEST's default 1.0, at least one step):
    sent from step 0, each step's current is delivered ``round(delay / dt)`` steps later (and
    then acts on V from the following step, see :func:`iaf_psc_alpha_step`)."""
    amplitude = torch.as_tensor(amplitude, dtype=torch.float64).reshape(-1)
    if not delay > 0:
        raise SpikeverseError(f"a device's delay must be > 0 ms, got {delay}")
    d = max(1, math.floor(delay / dt + 0.5))
    out = torch.zeros(steps, amplitude.numel(), dtype=torch.float64)
    out[d:] = amplitude
    return out


@dataclass
class AlphaRecording:
    """What NEST's multimeter (V_m every ``interval`` ms) and spike_recorder would record."""

    t: Tensor  # [samples] multimeter sample times (ms): interval, 2 interval, ...
    v_m: Tensor  # [samples, n] membrane potential (mV)
    spikes: Tensor  # [steps, n] bool, step k stamped (k + 1) dt
    dt: float

    def spike_times(self, neuron: int) -> Tensor:
        """Spike times (ms) of one neuron: the end of the step in which V crossed V_th."""
        return sample_times(self.spikes.shape[0], self.dt)[self.spikes[:, neuron].cpu()]


class AlphaNetwork:
    """N ``iaf_psc_alpha`` neurons connected by ``weights[i, j]`` (pA, from i to j; 0 = none)
    with transmission ``delays`` (ms, a float or an [N, N] tensor, rounded to steps, at least
    one step), spikes travelling through a ring buffer as in NEST."""

    def __init__(self, weights: Tensor, delays: Scalar = 1.0, params: AlphaParams = AlphaParams(),
                 dt: float = 0.1, *, device=None, dtype=torch.float64):
        if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
            raise SpikeverseError(f"weights must be an [N, N] matrix, got shape {tuple(weights.shape)}")
        delays = torch.as_tensor(delays, dtype=torch.float64)
        if bool((delays < 0).any()):
            raise SpikeverseError("delays must be >= 0 ms")
        self.n, self.dt, self.params = weights.shape[0], float(dt), params
        self.prop = alpha_propagators(params, self.dt)
        self.device, self.dtype = device, dtype
        w = weights.to(device=device, dtype=dtype)
        d = torch.floor(delays / self.dt + 0.5).clamp_min(1)
        d = torch.broadcast_to(d.to(torch.int64), w.shape).to(w.device)
        # one (delay, excitatory part, inhibitory part) per distinct delay of a connection
        self.by_delay = [(int(k), w.clamp_min(0) * (d == k), w.clamp_max(0) * (d == k))
                         for k in torch.unique(d[w != 0]).tolist()]
        self.ring = 1 + max((k for k, _, _ in self.by_delay), default=0)

    def simulate(self, duration: float, stimulus: Optional[Tensor] = None,
                 current: Optional[Tensor] = None, interval: Optional[float] = None) -> AlphaRecording:
        """Run from rest for ``duration`` ms. ``stimulus`` [steps, N]: summed weights (pA) of
        external spikes delivered in each step (as a spike_generator's), split by sign.
        ``current`` [steps, N]: device current (pA) delivered in each step, e.g.
        :func:`dc_generator_current`. V_m is sampled every ``interval`` ms (a multiple of dt;
        None = every step), as NEST's multimeter."""
        steps = time_grid(duration, self.dt)
        shape = (steps, self.n)
        every = 1 if interval is None else steps_of(interval, self.dt)
        for name, x in (("stimulus", stimulus), ("current", current)):
            if x is not None and tuple(x.shape) != shape:
                raise SpikeverseError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
        kw = dict(device=self.device, dtype=self.dtype)
        stim = torch.zeros(shape, **kw) if stimulus is None else stimulus.to(**kw)
        stim_ex, stim_in = stim.clamp_min(0), stim.clamp_max(0)
        cur = None if current is None else current.to(**kw)
        buf = torch.zeros(self.ring, 2, self.n, **kw)  # ring buffer: [slot, (ex, in), neuron]
        state = alpha_state((self.n,), **kw)
        v_m = torch.empty(steps // every, self.n, **kw)
        spikes = torch.empty(shape, device=self.device, dtype=torch.bool)
        params = replace(self.params, I_e=torch.as_tensor(self.params.I_e, **kw))
        for k in range(steps):
            slot = buf[k % self.ring]
            w_ex, w_in = slot[0] + stim_ex[k], slot[1] + stim_in[k]
            slot.zero_()
            s, state = iaf_psc_alpha_step(state, w_ex, w_in, self.prop, params,
                                          None if cur is None else cur[k])
            sf = s.to(self.dtype)
            for d, w_pos, w_neg in self.by_delay:
                buf[(k + d) % self.ring, 0] += sf @ w_pos
                buf[(k + d) % self.ring, 1] += sf @ w_neg
            if (k + 1) % every == 0:
                v_m[(k + 1) // every - 1] = state.y + params.E_L
            spikes[k] = s
        t = sample_times(steps, self.dt)[every - 1::every][:steps // every]
        return AlphaRecording(t, v_m.cpu(), spikes.cpu(), self.dt)


def two_neuron_experiment(dc: float = 500.0, weight: float = 1000.0, delay: float = 1.0,
                          duration: float = 1000.0, dt: float = 0.1,
                          params: AlphaParams = AlphaParams(), *, device_delay: float = 1.0,
                          interval: Optional[float] = None) -> dict:
    """Seed 002 sec. 3.1 as run in NEST: a ``dc_generator`` of ``dc`` pA connected to neuron A
    with ``device_delay`` (ms; NEST's default 1.0; 0 = no device, ``dc`` as A's ``I_e``, on
    from t = 0), A projecting onto neuron B with ``weight`` (pA) and ``delay`` (ms); a
    multimeter samples V_m of both every ``interval`` ms (None: 0.1 ms as in seed 002, or dt
    if dt is coarser), a spike_recorder records the spikes. Returns JSON-ready
    {"spikes": {"A", "B"} (ms), "v_m": {"t", "A", "B"} (mV), ...}."""
    if device_delay < 0:
        raise SpikeverseError(f"device_delay must be >= 0 ms (0 = none), got {device_delay}")
    if interval is None:  # seed 002's 0.1 ms where NEST allows it, else every step
        check_dt(dt)
        interval = 0.1 if _multiple(0.1, dt) else dt
    steps = time_grid(duration, dt)
    amp = torch.tensor([dc, 0.0], dtype=torch.float64)
    i_e = amp if device_delay == 0 else torch.zeros(2, dtype=torch.float64)
    current = None if device_delay == 0 else dc_generator_current(amp, steps, dt, device_delay)
    net = AlphaNetwork(torch.tensor([[0.0, weight], [0.0, 0.0]], dtype=torch.float64), delay,
                       replace(params, I_e=i_e), dt)
    rec = net.simulate(duration, current=current, interval=interval)
    return {"model": "iaf_psc_alpha", "dc": dc, "weight": weight, "delay": delay,
            "device_delay": device_delay, "duration": duration, "dt": dt, "interval": interval,
            "params": {**asdict(params), "I_e": i_e.tolist()},
            "spikes": {"A": rec.spike_times(0).tolist(), "B": rec.spike_times(1).tolist()},
            "v_m": {"t": rec.t.tolist(), "A": rec.v_m[:, 0].tolist(), "B": rec.v_m[:, 1].tolist()}}
