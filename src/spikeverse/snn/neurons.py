"""Spiking neurons (SPEC R-SNN-IF, R-SNN-LIF): pure step functions with explicit state, thin
stateful ``nn.Module`` wrappers, and ``reset_net``.

Every step function works elementwise on tensors of any shape, float32 or float64, CPU or CUDA.
Thresholds (``v_th``) and other constants may be floats or tensors broadcastable to the state
(per-neuron thresholds). A spike is ``s = spike_fn(u - v_th)`` where ``u`` is the membrane
potential after integration; the default ``heaviside`` has no gradient, a surrogate spike
function (``spikeverse.snn.surrogates``) makes the step differentiable. The reset is part of
the graph unless ``detach_reset=True`` (as SpikingJelly's ``detach_reset``), which stops the
gradient through the spike in the reset term only.

Resets, shared by all models:
- ``"subtract"`` (alias ``"soft"``, seed 003's name): v = u - v_th s (seed 001 eq. 3);
- ``"hard"``: v = u (1 - s) + v_reset s (seed 003 eq. 2, seed 000 sec. 5.2).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from spikeverse.errors import SpikeverseError
from spikeverse.snn.surrogates import heaviside

Scalar = Union[float, Tensor]
SpikeFn = Callable[[Tensor], Tensor]
RESETS = ("subtract", "soft", "hard")


def _check_reset(reset: str) -> None:
    if reset not in RESETS:
        raise SpikeverseError(f"unknown reset {reset!r}: use 'subtract' (alias 'soft') or 'hard'")


def _reset(u: Tensor, s: Tensor, v_th: Scalar, reset: str, v_reset: Scalar, detach_reset: bool) -> Tensor:
    """Membrane after the spike: u - v_th s (subtract/soft) or u (1 - s) + v_reset s (hard)."""
    _check_reset(reset)
    if detach_reset:
        s = s.detach()
    if reset == "hard":
        return u * (1.0 - s) + v_reset * s
    return u - v_th * s


def _fire(u: Tensor, v_th: Scalar, reset: str, v_reset: Scalar, spike_fn: SpikeFn,
          detach_reset: bool) -> tuple[Tensor, Tensor]:
    """s = spike_fn(u - v_th), then the reset; returns (s, v)."""
    s = spike_fn(u - v_th)
    return s, _reset(u, s, v_th, reset, v_reset, detach_reset)


def if_step(v: Tensor, z: Tensor, v_th: Scalar = 1.0, *, reset: str = "subtract",
            v_reset: Scalar = 0.0, spike_fn: SpikeFn = heaviside,
            detach_reset: bool = False) -> tuple[Tensor, Tensor]:
    """Integrate-and-fire step (seed 001 eq. 1-3): u = v + z, s = H(u - v_th), then reset by
    subtraction v = u - v_th s (default; conserves charge, eq. 4-6) or hard reset to v_reset.
    ``z`` is the input current of this step (W theta_{l-1}(t) + b). Returns (s, v)."""
    return _fire(v + z, v_th, reset, v_reset, spike_fn, detach_reset)


def _decay(dt: float, tau: Scalar) -> Scalar:
    """exp(-dt / tau) for a float or per-neuron tensor tau."""
    return torch.exp(-dt / tau) if isinstance(tau, Tensor) else math.exp(-dt / tau)


def lif_step(v: Tensor, i: Tensor, refractory: Optional[Tensor] = None, *, tau: Scalar = 10.0,
             dt: float = 1.0, r: Scalar = 1.0, v_rest: Scalar = 0.0, v_th: Scalar = 1.0,
             v_reset: Scalar = 0.0, t_ref_steps: int = 0, reset: str = "hard",
             spike_fn: SpikeFn = heaviside,
             detach_reset: bool = False) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Leaky integrate-and-fire step, the continuous model tau dv/dt = -(v - v_rest) + R I
    (seed 000 sec. 5.2, seed 002 eq. 1) integrated exactly for an input I held constant over
    the step: u = v_rest + (v - v_rest) e^{-dt/tau} + R I (1 - e^{-dt/tau}); then
    s = H(u - v_th) and the reset (hard to v_reset by default).

    Refractoriness (``t_ref_steps`` > 0): after a spike the neuron neither integrates nor fires
    for the next ``t_ref_steps`` steps, its membrane held (at v_reset for the hard reset), as
    NEST does. ``refractory`` holds the remaining refractory steps per neuron (None = none yet).
    Returns (s, v, refractory); refractory is None when ``t_ref_steps`` is 0.
    """
    d = _decay(dt, tau)
    u = v_rest + (v - v_rest) * d + r * i * (1.0 - d)
    if t_ref_steps <= 0:
        s, v = _fire(u, v_th, reset, v_reset, spike_fn, detach_reset)
        return s, v, None
    if refractory is None:
        refractory = torch.zeros(v.shape, dtype=torch.int64, device=v.device)
    free = refractory <= 0
    u = torch.where(free, u, v)
    s = spike_fn(u - v_th) * free.to(u.dtype)
    v = _reset(u, s, v_th, reset, v_reset, detach_reset)
    refractory = torch.where(s > 0, t_ref_steps, (refractory - 1).clamp_min(0))
    return s, v, refractory


def lif_dsqn_step(v: Tensor, i: Tensor, *, tau: Scalar = 2.0, v_th: Scalar = 1.0,
                  v_reset: Scalar = 0.0, reset: str = "hard", spike_fn: SpikeFn = heaviside,
                  detach_reset: bool = False) -> tuple[Tensor, Tensor]:
    """LIF step in the DSQN form (seed 003 eq. 1-2, Liu et al. 2022):
    U_t = V_{t-1} + (1/tau)(I_t - V_{t-1} + V_r) with I_t = W S_{t-1} the input current,
    S_t = H(U_t - V_th), hard reset V_t = U_t (1 - S_t) + V_r S_t (default) or soft reset
    V_t = U_t - V_th S_t. (The Euler step, dt = 1, of the continuous LIF with v_rest = V_r.)
    Returns (s, v)."""
    u = v + (i - v + v_reset) / tau
    return _fire(u, v_th, reset, v_reset, spike_fn, detach_reset)


def check_dt(dt: float) -> None:
    """Raise SpikeverseError unless the resolution ``dt`` is > 0."""
    if not dt > 0:
        raise SpikeverseError(f"dt must be > 0 ms, got {dt}")


def time_grid(duration: float, dt: float) -> int:
    """Number of steps of resolution ``dt`` (ms) in ``duration`` (ms); checks both are sane."""
    check_dt(dt)
    if not duration > 0:
        raise SpikeverseError(f"duration must be > 0 ms, got {duration}")
    steps = round(duration / dt)
    if steps < 1:
        raise SpikeverseError(f"duration {duration} ms is shorter than one step of {dt} ms")
    return steps


def sample_times(steps: int, dt: float) -> Tensor:
    """NEST's time stamps of steps 0..steps-1: the end of each step, (k + 1) dt (ms, float64)."""
    return (torch.arange(1, steps + 1, dtype=torch.float64) * dt).round(decimals=9)


class StatefulModule(nn.Module):
    """A module with state across time steps; ``reset_net`` calls ``reset()`` on each one."""

    def reset(self) -> None:
        """Forget the state (subclasses implement it)."""
        raise NotImplementedError


def reset_net(net: nn.Module) -> None:
    """Reset every ``StatefulModule`` inside ``net`` (``net`` included) and nothing else."""
    for m in net.modules():
        if isinstance(m, StatefulModule):
            m.reset()


class _Neuron(StatefulModule):
    """Shared wrapper: holds the membrane ``v`` (shaped lazily like the first input, started at
    ``v_init``), ``forward(x)`` = one step, ``multi_step(x_seq)`` = T steps on [T, B, ...].
    Tensor constants (per-neuron ``v_th``, ``v_init``, ...) are buffers, so ``.to()`` moves them."""

    def __init__(self, *, v_th: Scalar, v_reset: Scalar, v_init: Scalar, reset: str,
                 spike_fn: SpikeFn, detach_reset: bool):
        super().__init__()
        _check_reset(reset)
        self._const("v_th", v_th)
        self._const("v_reset", v_reset)
        self._const("v_init", v_init)
        self.reset_mode = reset
        self.spike_fn = spike_fn
        self.detach_reset = detach_reset
        self.v: Optional[Tensor] = None

    def _const(self, name: str, value: Scalar) -> None:
        if isinstance(value, Tensor):
            self.register_buffer(name, value)
        else:
            setattr(self, name, float(value))

    def reset(self) -> None:
        """Forget the state; the next input starts again from ``v_init``."""
        self.v = None

    def _init_state(self, x: Tensor) -> None:
        if self.v is None:
            v0 = torch.as_tensor(self.v_init, dtype=x.dtype, device=x.device)
            self.v = torch.broadcast_to(v0, x.shape).clone()
        elif self.v.shape != x.shape:
            raise SpikeverseError(f"{type(self).__name__}: input shape {tuple(x.shape)} differs from "
                                  f"the state's {tuple(self.v.shape)}; call reset() first")

    def _step(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """One time step: integrate the input current ``x``, return the spikes."""
        self._init_state(x)
        return self._step(x)

    def multi_step(self, x_seq: Tensor, record_v: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Run T steps on a time-first input [T, B, ...]; returns the spikes [T, B, ...]
        (and the membrane after every step, [T, B, ...], with ``record_v``)."""
        spikes, trace = [], []
        for x in x_seq:
            spikes.append(self.forward(x))
            if record_v:
                trace.append(self.v.detach().clone())
        return (torch.stack(spikes), torch.stack(trace)) if record_v else torch.stack(spikes)

    def extra_repr(self) -> str:
        return f"reset={self.reset_mode!r}, detach_reset={self.detach_reset}"


class IFNeuron(_Neuron):
    """Integrate-and-fire neurons (``if_step``); ``v_init=v_th/2`` is the usual conversion start."""

    def __init__(self, v_th: Scalar = 1.0, *, reset: str = "subtract", v_reset: Scalar = 0.0,
                 v_init: Scalar = 0.0, spike_fn: SpikeFn = heaviside, detach_reset: bool = False):
        super().__init__(v_th=v_th, v_reset=v_reset, v_init=v_init, reset=reset,
                         spike_fn=spike_fn, detach_reset=detach_reset)

    def _step(self, x: Tensor) -> Tensor:
        s, self.v = if_step(self.v, x, self.v_th, reset=self.reset_mode, v_reset=self.v_reset,
                            spike_fn=self.spike_fn, detach_reset=self.detach_reset)
        return s

    def multi_step(self, x_seq: Tensor, record_v: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """T steps; without gradients (conversion, evaluation) an in-place loop with the same
        arithmetic as ``if_step`` and no allocation per step."""
        if record_v or self.spike_fn is not heaviside or (torch.is_grad_enabled() and x_seq.requires_grad):
            return super().multi_step(x_seq, record_v)
        self._init_state(x_seq[0])
        v, out = self.v, torch.empty_like(x_seq, memory_format=torch.contiguous_format)
        hard = self.reset_mode == "hard"
        for t in range(x_seq.shape[0]):
            v.add_(x_seq[t])
            s = out[t]
            torch.ge(v, self.v_th, out=s)  # H(u - v_th), written as 0./1. in the input's dtype
            if hard:  # u (1 - s) + v_reset s
                v.mul_(1.0 - s).add_(s * self.v_reset)
            elif isinstance(self.v_th, Tensor):  # u - v_th s
                v.addcmul_(s, self.v_th, value=-1.0)
            else:
                v.sub_(s, alpha=self.v_th)
        return out


class LIFNeuron(_Neuron):
    """Continuous-model LIF neurons (``lif_step``), with optional refractory steps."""

    def __init__(self, tau: float = 10.0, *, dt: float = 1.0, r: float = 1.0, v_rest: float = 0.0,
                 v_th: Scalar = 1.0, v_reset: Scalar = 0.0, t_ref_steps: int = 0,
                 reset: str = "hard", v_init: Optional[Scalar] = None,
                 spike_fn: SpikeFn = heaviside, detach_reset: bool = False):
        super().__init__(v_th=v_th, v_reset=v_reset, v_init=v_rest if v_init is None else v_init,
                         reset=reset, spike_fn=spike_fn, detach_reset=detach_reset)
        self.tau, self.dt, self.r, self.v_rest = float(tau), float(dt), float(r), float(v_rest)
        self.t_ref_steps = int(t_ref_steps)
        self.refractory: Optional[Tensor] = None

    def reset(self) -> None:
        super().reset()
        self.refractory = None

    def _step(self, x: Tensor) -> Tensor:
        s, self.v, self.refractory = lif_step(
            self.v, x, self.refractory, tau=self.tau, dt=self.dt, r=self.r, v_rest=self.v_rest,
            v_th=self.v_th, v_reset=self.v_reset, t_ref_steps=self.t_ref_steps,
            reset=self.reset_mode, spike_fn=self.spike_fn, detach_reset=self.detach_reset)
        return s

    def extra_repr(self) -> str:
        return f"tau={self.tau}, dt={self.dt}, t_ref_steps={self.t_ref_steps}, " + super().extra_repr()


def _dsqn_loop(x_seq: Tensor, v: Tensor, tau: float, v_th: float, v_reset: float, hard: bool,
               grad_coeffs: Optional[tuple[Callable[[Tensor], Tensor], bool]] = None
               ) -> tuple[Tensor, Tensor, Optional[tuple[Tensor, Tensor]]]:
    """T steps of ``lif_dsqn_step`` in place on ``v`` (same arithmetic, no graph, no allocation
    per step): returns the spikes [T, ...], the final membrane and, with ``grad_coeffs = (surrogate derivative, detach_reset)``, the two coefficients of
    :class:`_DSQNWindow`'s backward, sigma_t / tau and dv_t/du_t (1 - 1/tau), computed while u_t
    is at hand (one step's slice, in cache) rather than in passes over the whole window later."""
    out = torch.empty_like(x_seq, memory_format=torch.contiguous_format)
    tmp = torch.empty_like(v)
    coeffs = None
    if grad_coeffs is not None:
        derivative, detach_reset = grad_coeffs
        coeffs = (torch.empty(x_seq.shape, dtype=v.dtype, device=v.device),
                  torch.empty(x_seq.shape, dtype=v.dtype, device=v.device))
    for t in range(x_seq.shape[0]):
        torch.sub(x_seq[t], v, out=tmp)  # u = v + (x - v + V_r) / tau
        if v_reset != 0.0:
            tmp.add_(v_reset)
        v.add_(tmp.div_(tau))
        s = out[t]
        torch.ge(v, v_th, out=s)  # H(u - V_th), as 0./1.
        if coeffs is not None:  # with k = 1 - 1/tau, k sigma = (tau - 1) (sigma / tau)
            sig, c, k = coeffs[0][t], coeffs[1][t], 1.0 - 1.0 / tau
            torch.mul(derivative(torch.sub(v, v_th, out=tmp)), 1.0 / tau, out=sig)
            if hard:  # k dv/du = k (1 - s) + k (V_r - u) sigma; detach_reset: k (1 - s)
                torch.mul(s, -k, out=c).add_(k)
                if not detach_reset:
                    c.addcmul_(v if v_reset == 0.0 else torch.sub(v, v_reset, out=tmp), sig, value=-(tau - 1.0))
            elif detach_reset:
                c.fill_(k)
            else:  # soft: k (1 - V_th sigma)
                torch.mul(sig, -v_th * (tau - 1.0), out=c).add_(k)
        if hard:  # u (1 - s) + V_r s, as u - u s + V_r s
            v.addcmul_(v, s, value=-1.0)
            if v_reset != 0.0:
                v.add_(s, alpha=v_reset)
        else:  # u - V_th s
            v.sub_(s, alpha=v_th)
    return out, v, coeffs


class _DSQNWindow(torch.autograd.Function):
    """T steps of ``lif_dsqn_step`` from a constant start, with a hand-written BPTT backward.

    Forward (no graph): u_t = v_{t-1} + (x_t - v_{t-1} + V_r)/tau, s_t = H(u_t - V_th), then
    hard reset v_t = u_t (1 - s_t) + V_r s_t or soft v_t = u_t - V_th s_t. Backward, from the
    last step to the first, with sigma_t = g'(u_t - V_th) the surrogate derivative:
        dv_t/du_t = (1 - s_t) + (V_r - u_t) sigma_t   (hard; soft: 1 - V_th sigma_t;
                                                        detach_reset: 1 - s_t, resp. 1)
        dL/du_t = dL/ds_t sigma_t + dL/dv_t dv_t/du_t,  dL/dx_t = dL/du_t / tau,
        dL/dv_{t-1} = dL/du_t (1 - 1/tau).
    In g_t = dL/dx_t this is g_t = dL/ds_t (sigma_t / tau) + (dv_t/du_t (1 - 1/tau)) g_{t+1}:
    the forward stores the two coefficients, the backward is one multiply and one fused
    multiply-add per step. The same gradients as autograd through the step-by-step graph."""

    @staticmethod
    def forward(ctx, x_seq, v0, tau, v_th, v_reset, hard, detach_reset, spike_fn):
        s_seq, v, (sig, c) = _dsqn_loop(x_seq, v0.clone(), tau, v_th, v_reset, hard,
                                        grad_coeffs=(spike_fn.derivative, detach_reset))
        ctx.save_for_backward(sig, c)
        ctx.mark_non_differentiable(v)
        return s_seq, v

    @staticmethod
    def backward(ctx, grad_s, _grad_v):
        sig, c = ctx.saved_tensors
        g = torch.mul(grad_s, sig)
        for t in range(g.shape[0] - 2, -1, -1):
            g[t].addcmul_(c[t], g[t + 1])
        return g, None, None, None, None, None, None, None


class DSQNLIFNeuron(_Neuron):
    """LIF neurons in the DSQN form of seed 003 (``lif_dsqn_step``); start at V_r by default.
    A whole window from a fresh state with gradients runs through :class:`_DSQNWindow`."""

    def __init__(self, tau: float = 2.0, *, v_th: Scalar = 1.0, v_reset: Scalar = 0.0,
                 reset: str = "hard", v_init: Optional[Scalar] = None,
                 spike_fn: SpikeFn = heaviside, detach_reset: bool = False):
        super().__init__(v_th=v_th, v_reset=v_reset, v_init=v_reset if v_init is None else v_init,
                         reset=reset, spike_fn=spike_fn, detach_reset=detach_reset)
        self.tau = float(tau)

    def multi_step(self, x_seq: Tensor, record_v: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        scalars = not any(isinstance(c, Tensor) for c in (self.v_th, self.v_reset, self.v_init))
        needs_grad = torch.is_grad_enabled() and x_seq.requires_grad
        if scalars and not record_v and not needs_grad:  # acting, evaluating, targets
            self._init_state(x_seq[0])
            out, self.v, _ = _dsqn_loop(x_seq, self.v, self.tau, self.v_th, self.v_reset, self.reset_mode == "hard")
            return out
        fused = scalars and not record_v and self.v is None and hasattr(self.spike_fn, "derivative")
        if not fused:
            return super().multi_step(x_seq, record_v)
        v0 = torch.full_like(x_seq[0], self.v_init)
        s, v = _DSQNWindow.apply(x_seq, v0, self.tau, self.v_th, self.v_reset, self.reset_mode == "hard",
                                 self.detach_reset, self.spike_fn)
        self.v = v
        return s

    def _step(self, x: Tensor) -> Tensor:
        s, self.v = lif_dsqn_step(self.v, x, tau=self.tau, v_th=self.v_th, v_reset=self.v_reset,
                                  reset=self.reset_mode, spike_fn=self.spike_fn,
                                  detach_reset=self.detach_reset)
        return s

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


def dc_response(model: str = "lif", *, dc: float = 1.5, duration: float = 100.0, dt: float = 0.1,
                tau: float = 10.0, v_th: float = 1.0, t_ref: float = 0.0, input_rate: float = 0.0,
                weight: float = 0.0, seed: int = 0) -> dict:
    """Membrane trace of one neuron (v_rest = v_reset = 0, R = C = 1, times in ms) driven by a
    DC current ``dc`` plus, optionally, Poisson input spikes at ``input_rate`` Hz, each adding
    ``weight`` to the input current for one step. ``model="lif"``: ``LIFNeuron`` (seed 000
    sec. 5.2, hard reset, ``t_ref`` ms refractory); ``model="if"``: ``IFNeuron`` (seed 001,
    reset by subtraction) integrating z = I dt per step. Like a NEST multimeter, the sample of
    step k is the state at its end, t = (k + 1) dt; a spike in step k is stamped (k + 1) dt.
    Returns {"model", "spikes": {"neuron", "input"}, "v_m": {"t", "neuron"}} (lists)."""
    steps = time_grid(duration, dt)
    if model not in ("lif", "if"):
        raise SpikeverseError(f"unknown neuron model {model!r}: use lif or if")
    if not tau > 0 or t_ref < 0 or input_rate < 0:
        raise SpikeverseError("tau must be > 0, t_ref and input_rate >= 0")
    p_in = input_rate * dt / 1000.0
    if p_in > 1:
        raise SpikeverseError(f"input rate {input_rate} Hz exceeds one spike per step of {dt} ms")
    gen = torch.Generator().manual_seed(seed)
    s_in = (torch.rand(steps, 1, generator=gen, dtype=torch.float64) < p_in).double()
    current = dc + weight * s_in
    if model == "lif":
        neuron: _Neuron = LIFNeuron(tau, dt=dt, v_th=v_th, t_ref_steps=round(t_ref / dt))
    else:
        neuron, current = IFNeuron(v_th), current * dt
    v_m = torch.empty(steps, dtype=torch.float64)
    s_out = torch.empty(steps, dtype=torch.float64)
    for k in range(steps):
        s_out[k] = neuron(current[k])[0]
        v_m[k] = neuron.v[0]
    t = sample_times(steps, dt)
    return {"model": model,
            "spikes": {"neuron": t[s_out > 0].tolist(), "input": t[s_in[:, 0] > 0].tolist()},
            "v_m": {"t": t.tolist(), "neuron": v_m.tolist()}}
