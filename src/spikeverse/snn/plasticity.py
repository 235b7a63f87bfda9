"""Synaptic plasticity (SPEC R-SNN-STDP): the pair-based STDP window (seed 000 sec. 5.3), online
all-to-all pair STDP with exponential traces, NEST's trace-based weight-dependent ``stdp_synapse``
rule (seed 002 eq. 8-12) and reward-modulated STDP with an eligibility trace (seed 002 eq. 2-3).

Conventions
- Weights are [..., post, pre] ([post, pre] or [B, post, pre]); the spikes of one step are 0/1
  tensors [..., pre] and [..., post] with the same leading dimensions. Hyperparameters are Python
  floats, so every rule runs on the device and in the dtype (float32/float64) of its inputs.
- Times are in ms; ``dt`` is the step, a spike in step n happens at t = n dt.
- Sign: dt_spike = t_post - t_pre. Pre before post (dt_spike > 0, causal) potentiates, post
  before pre (dt_spike < 0) depresses. Seed 000 says so in words; its printed formula has the sign
  of dt flipped, and we follow the words. Coincident spikes (dt_spike = 0) do not pair: the window
  is 0 there, and the online rules below leave such pairs out in the same way.
- A trace is x(t) = sum over spikes t_k <= t of exp(-(t - t_k)/tau): it decays with tau and each
  spike adds 1. Order within a step at time t: (1) the traces decay from t - dt to t, giving x(t-),
  which leaves out the spikes at t; (2) the weight update reads x(t-); (3) the spikes at t are
  added, giving x(t), the value a rule's state holds between steps.
- A rule is a frozen dataclass of hyperparameters with ``init_state(w)`` and a pure
  ``step(w, pre, post, state) -> (w, state)``; the caller owns the state. Invalid
  hyperparameters raise :class:`~spikeverse.errors.SpikeverseError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SpikeverseError(message)


def _positive(**values: float) -> None:
    for name, value in values.items():
        _require(value > 0, f"{name} must be > 0, got {value}")


def _bounds(wmin: float, wmax: float) -> None:
    _require(wmin <= wmax, f"wmin must be <= wmax, got wmin={wmin}, wmax={wmax}")


def stdp_window(dt: Tensor | float, a_plus: float, a_minus: float, tau_plus: float, tau_minus: float) -> Tensor:
    """The pair-based STDP window of seed 000 sec. 5.3 (Fig. 18), with dt = t_post - t_pre:

    W(dt) = +a_plus exp(-dt/tau_plus) for dt > 0 (pre before post: potentiation),
    W(dt) = -a_minus exp(dt/tau_minus) for dt < 0 (post before pre: depression), W(0) = 0.
    """
    dt = torch.as_tensor(dt)
    if not dt.is_floating_point():
        dt = dt.to(torch.get_default_dtype())
    decay = -dt.abs()
    return torch.where(dt > 0, a_plus * torch.exp(decay / tau_plus),
                       torch.where(dt < 0, -a_minus * torch.exp(decay / tau_minus), torch.zeros_like(dt)))


class Traces(NamedTuple):
    """The pre traces [..., pre] and post traces [..., post] of a layer, at the end of a step."""

    pre: Tensor
    post: Tensor


def _zero_traces(w: Tensor) -> Traces:
    return Traces(w.new_zeros(w.shape[:-2] + w.shape[-1:]), w.new_zeros(w.shape[:-1]))


def _advance(traces: Traces, pre: Tensor, post: Tensor, dt: float, tau_pre: float,
             tau_post: float) -> tuple[Traces, Traces]:
    """One step of the traces: (x(t-), the decayed values the update reads; x(t), with the spikes at t)."""
    now = Traces(traces.pre * math.exp(-dt / tau_pre), traces.post * math.exp(-dt / tau_post))
    return now, Traces(now.pre + pre, now.post + post)


def _outer(post: Tensor, pre: Tensor) -> Tensor:
    """[..., post] x [..., pre] -> [..., post, pre]."""
    return post.unsqueeze(-1) * pre.unsqueeze(-2)


@dataclass(frozen=True)
class PairSTDP:
    """Additive pair STDP with all-to-all pairing, computed online (seed 000 sec. 5.3).

    Traces x_pre (tau_plus) and x_post (tau_minus) make the window local in time: in each step
    dw_ij = a_plus post_i x_pre_j(t-) - a_minus x_post_i(t-) pre_j, then w <- clip(w + dw, wmin, wmax).
    Without clipping the total change is the sum of :func:`stdp_window` over all pairs of a pre
    spike of j and a post spike of i. Seed 000 gives no numbers; the defaults are those of Song,
    Miller & Abbott (2000): a_plus 0.005, a_minus = 1.05 a_plus, tau 20 ms.
    """

    a_plus: float = 0.005
    a_minus: float = 0.00525
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    dt: float = 1.0
    wmin: float = 0.0
    wmax: float = 1.0

    def __post_init__(self) -> None:
        _positive(tau_plus=self.tau_plus, tau_minus=self.tau_minus, dt=self.dt)
        _bounds(self.wmin, self.wmax)

    def window(self, dt_spike: Tensor | float) -> Tensor:
        """This rule's window W(t_post - t_pre)."""
        return stdp_window(dt_spike, self.a_plus, self.a_minus, self.tau_plus, self.tau_minus)

    def init_state(self, w: Tensor) -> Traces:
        return _zero_traces(w)

    def increment(self, pre: Tensor, post: Tensor, traces: Traces) -> tuple[Tensor, Traces]:
        """STDP_ij(t): the unclipped weight change of one step, and the traces after it."""
        now, traces = _advance(traces, pre, post, self.dt, self.tau_plus, self.tau_minus)
        return self.a_plus * _outer(post, now.pre) - self.a_minus * _outer(now.post, pre), traces

    def step(self, w: Tensor, pre: Tensor, post: Tensor, traces: Traces) -> tuple[Tensor, Traces]:
        dw, traces = self.increment(pre, post, traces)
        return (w + dw).clamp(self.wmin, self.wmax), traces


def stdp_window_curve(rule: PairSTDP | None = None, span: float = 100.0) -> tuple[Tensor, Tensor]:
    """Seed 000 Fig. 18: (dt_spike, W(dt_spike)) on dt_spike = -span, -span + dt, ..., span (ms)."""
    rule = rule or PairSTDP()
    _positive(span=span)
    n = math.floor(span / rule.dt + 1e-9)
    dts = torch.arange(-n, n + 1, dtype=torch.float64) * rule.dt
    return dts, rule.window(dts)


@dataclass(frozen=True)
class TraceSTDP:
    """Trace-based, weight-dependent STDP as NEST's ``stdp_synapse`` (seed 002 eq. 8-12).

    Traces K_pre (tau_tr_pre, NEST's synapse ``tau_plus``) and K_post (tau_tr_post, the neuron's
    ``tau_minus``) decay exponentially and each spike adds 1 (eq. 8-9). In a step at time t:
    1. facilitation at each post spike, with the pre trace K_pre(t-) (eq. 10):
       w <- Wmax (w/Wmax + lambda (1 - w/Wmax)^mu_plus K_pre(t-)), clipped to [Wmin, Wmax];
    2. depression at each pre spike, with the post trace K_post(t-) (eq. 11):
       w <- Wmax (w/Wmax - alpha lambda (w/Wmax)^mu_minus K_post(t-)), clipped to [Wmin, Wmax];
    3. the spikes at t are added to the traces.
    This is NEST's order: at a pre spike NEST first facilitates once per post spike in
    (t_last_pre, t_pre], with the pre trace just before each of them (so not counting a pre
    spike at the same time), then depresses with the post trace of the post spikes strictly
    before t_pre. NEST applies the facilitations late, at the next pre spike; applying each at
    its post spike gives the same sequence of updates, hence equal weights at every pre spike
    (NEST's last weight lacks the facilitation by post spikes after the last pre spike). The
    dendritic delay is 0 here (post spike times as seen by the synapse). Seed 002 eq. 12
    combines the two updates as min(max(Wmin, w_dep), w_pot); we clip after each, as NEST does.
    Defaults are seed 002's values; its alpha, listed as "-1.0", is read as NEST's default 1.0
    (a negative alpha would turn depression into potentiation). w must lie in [Wmin, Wmax].
    """

    wmax: float = 1000.0
    wmin: float = 0.0
    lam: float = 0.01
    alpha: float = 1.0
    mu_plus: float = 1.0
    mu_minus: float = 1.0
    tau_tr_pre: float = 20.0
    tau_tr_post: float = 20.0
    dt: float = 1.0

    def __post_init__(self) -> None:
        _positive(tau_tr_pre=self.tau_tr_pre, tau_tr_post=self.tau_tr_post, dt=self.dt, wmax=self.wmax)
        _require(self.wmin >= 0, f"wmin must be >= 0 (NEST: weights share the sign of Wmax), got {self.wmin}")
        _bounds(self.wmin, self.wmax)

    def init_state(self, w: Tensor) -> Traces:
        return _zero_traces(w)

    def step(self, w: Tensor, pre: Tensor, post: Tensor, traces: Traces) -> tuple[Tensor, Traces]:
        now, traces = _advance(traces, pre, post, self.dt, self.tau_tr_pre, self.tau_tr_post)
        w = w + self.wmax * self.lam * (1 - w / self.wmax).pow(self.mu_plus) * _outer(post, now.pre)
        w = w.clamp(self.wmin, self.wmax)
        w = w - self.wmax * self.alpha * self.lam * (w / self.wmax).pow(self.mu_minus) * _outer(now.post, pre)
        return w.clamp(self.wmin, self.wmax), traces


class RSTDPState(NamedTuple):
    """The STDP traces and the eligibility e [..., post, pre] of an :class:`RSTDP` rule."""

    traces: Traces
    eligibility: Tensor


@dataclass(frozen=True)
class RSTDP:
    """Reward-modulated STDP with an eligibility trace (seed 002 eq. 2-3; Izhikevich 2007, Florian 2007).

    e_ij(t) = e_ij(t - dt) exp(-dt/tau_e) + STDP_ij(t),   w_ij <- clip(w_ij + eta r(t) e_ij(t), wmin, wmax),
    with STDP_ij(t) the step's pair-STDP change (:meth:`PairSTDP.increment` of ``stdp``, whose dt and
    weight bounds apply). A reward k steps after a pair credits it with weight exp(-k dt/tau_e).
    Seed 002's dw_ij = eta r_ij(t) STDP_ij(t) g_ij(t) (eq. 3, added to w per eq. 2) maps as: eta ->
    ``eta``; r_ij(t) -> ``reward``, a float or a tensor broadcastable to w ([B, 1, 1] per sample,
    [..., post, pre] per synapse); STDP_ij(t) -> the eligibility e_ij(t), the STDP term filtered
    so that rewards may come late; g_ij(t) -> 1 (fold any extra factor into a per-synapse reward).
    """

    stdp: PairSTDP = field(default_factory=PairSTDP)
    eta: float = 1.0
    tau_e: float = 1000.0

    def __post_init__(self) -> None:
        _positive(tau_e=self.tau_e)

    def init_state(self, w: Tensor) -> RSTDPState:
        return RSTDPState(self.stdp.init_state(w), torch.zeros_like(w))

    def step(self, w: Tensor, pre: Tensor, post: Tensor, reward: Tensor | float,
             state: RSTDPState) -> tuple[Tensor, RSTDPState]:
        stdp_t, traces = self.stdp.increment(pre, post, state.traces)
        e = state.eligibility * math.exp(-self.stdp.dt / self.tau_e) + stdp_t
        return (w + self.eta * reward * e).clamp(self.stdp.wmin, self.stdp.wmax), RSTDPState(traces, e)


@dataclass(frozen=True)
class TraceSTDPRun:
    """Time series of :func:`trace_stdp_experiment` at t = 0, dt, ..., duration: index 0 is the
    initial state (no spikes, zero traces, w0), index n the state after the step at t = n dt."""

    rule: TraceSTDP
    t: Tensor
    pre_spikes: Tensor
    post_spikes: Tensor
    k_pre: Tensor
    k_post: Tensor
    w: Tensor

    def to_dict(self) -> dict:
        spike_times = {name: self.t[s.bool()].tolist() for name, s in
                       (("pre_spike_times_ms", self.pre_spikes), ("post_spike_times_ms", self.post_spikes))}
        return {"t_ms": self.t.tolist(), "k_pre": self.k_pre.tolist(), "k_post": self.k_post.tolist(),
                "w": self.w.tolist(), **spike_times}


def trace_stdp_experiment(rule: TraceSTDP | None = None, *, w0: float = 500.0, duration: float = 1000.0,
                          rate_pre: float = 20.0, rate_post: float = 20.0, seed: int = 0) -> TraceSTDPRun:
    """Seed 002 Fig. 9: one synapse under :class:`TraceSTDP` (default: the seed's values), w0 500,
    1000 ms at dt 1 ms; the traces K_pre, K_post and the weight w over time.

    Seed 002 does not say which spike trains drove its synapse; we use independent Poisson trains
    (one Bernoulli draw per step, p = rate dt) at ``rate_pre`` and ``rate_post`` Hz, from ``seed``.
    """
    rule = rule or TraceSTDP()
    _positive(duration=duration)
    for name, rate in (("rate_pre", rate_pre), ("rate_post", rate_post)):
        _require(0 <= rate * rule.dt / 1000 <= 1, f"{name} must be in [0, 1000/dt] Hz, got {rate}")
    _require(rule.wmin <= w0 <= rule.wmax, f"w0 must be in [wmin, wmax] = [{rule.wmin}, {rule.wmax}], got {w0}")
    steps = max(1, round(duration / rule.dt))
    gen = torch.Generator().manual_seed(seed)
    p = torch.tensor([rate_pre, rate_post], dtype=torch.float64) * rule.dt / 1000
    spikes = (torch.rand(steps + 1, 2, generator=gen, dtype=torch.float64) < p).to(torch.float64)
    spikes[0] = 0
    w = torch.full((1, 1), float(w0), dtype=torch.float64)
    traces = rule.init_state(w)
    k_pre, k_post, ws = (torch.zeros(steps + 1, dtype=torch.float64) for _ in range(3))
    ws[0] = w0
    for n in range(1, steps + 1):
        w, traces = rule.step(w, spikes[n, :1], spikes[n, 1:], traces)
        k_pre[n], k_post[n], ws[n] = traces.pre[0], traces.post[0], w[0, 0]
    t = torch.arange(steps + 1, dtype=torch.float64) * rule.dt
    return TraceSTDPRun(rule, t, spikes[:, 0], spikes[:, 1], k_pre, k_post, ws)
