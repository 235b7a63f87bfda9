"""Input encoders (SPEC R-SNN-ENC): turn an input x [B, ...] into a time-first window [T, B, ...].

- :func:`analog`: the input itself as a constant current at every step (seed 001).
- :func:`poisson`: Bernoulli spikes with probability clip(gain * x, 0, 1) per step (seed 000's
  Poisson rate coding; gain = max_rate * dt); :func:`signed_poisson`: spikes of +-x_max with
  probability |x| / x_max (a converted SNN's Poisson input, mean x).
- :func:`regular_spikes`: a deterministic train at p spikes per step (the CartPole SNN's input);
  :func:`periodic_spikes`: the input at every ``period``-th step from the first (Mountain Car's).
- :func:`bin_code` / :func:`gaussian_code`: population coding of continuous variables, n neurons
  per variable over [low, high] (seed 002): a one-hot bin, or Gaussian receptive fields. These
  return per-neuron rates in [0, 1] of shape [..., D * n]; feed them to :func:`analog` (as a
  current) or :func:`poisson` (as spikes).

Memory. ``analog`` returns a stride-0 view: T "copies" cost nothing, and the simulator can take
the [B, ...] tensor itself (``run_window(..., constant_input=True)``) so that the layers before
the first neuron run once. For windows too long to hold, every encoder object also has
``step(x)``, one [B, ...] time step, to be called T times.

Encoders are pure functions of x (and of a ``torch.Generator`` for the random ones); every
output lives on x's device in x's floating dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError

Bounds = float | Sequence[float] | Tensor


def _check_timesteps(timesteps: int) -> None:
    if int(timesteps) < 1:
        raise SpikeverseError(f"timesteps must be >= 1, got {timesteps}")


def _float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.float()


# --- analog (seed 001) -----------------------------------------------------------------------------

def analog(x: Tensor, timesteps: int) -> Tensor:
    """I(t) = x for t = 1..T: [B, ...] -> [T, B, ...] as a broadcast view (no copy; read-only)."""
    _check_timesteps(timesteps)
    x = _float(x)
    return x.unsqueeze(0).expand(int(timesteps), *x.shape)


# --- Poisson / Bernoulli rate coding (seed 000) -------------------------------------------------

def _uniform(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(0, 1) samples of ``shape``, drawn on the generator's device (so a CPU generator gives the
    same spikes for CPU and CUDA inputs), returned on ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(tuple(shape), generator=generator, device=device, dtype=like.dtype)
    return u.to(like.device)


def poisson_step(x: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """One step of rate coding: s = [u < clip(gain * x, 0, 1)], u ~ U(0, 1); shape of x."""
    x = _float(x)
    p = (gain * x).clamp(0, 1)
    return (_uniform(x.shape, x, generator) < p).to(x.dtype)


def poisson(x: Tensor, timesteps: int, gain: float = 1.0,
            generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli spike trains [T, B, ...]: P(s_t = 1) = clip(gain * x, 0, 1) independently per
    step and element (seed 000: brighter pixel, more spikes). E[mean_t s_t] = clip(gain * x, 0, 1).
    Deterministic given the generator's state."""
    _check_timesteps(timesteps)
    x = _float(x)
    p = (gain * x).clamp(0, 1)
    return (_uniform((int(timesteps), *x.shape), x, generator) < p).to(x.dtype)


def signed_poisson(x: Tensor, timesteps: int, scale: float, generator: torch.Generator | None = None) -> Tensor:
    """Signed rate coding [T, B, ...]: s_t = x_max sign(x) [u < |x| / x_max], u ~ U(0, 1) drawn
    as float32 on x's device (x_max = ``scale``), so that the mean over the window is x for
    |x| <= x_max (seed 000's Poisson input of a converted SNN, ``convert.spiking``)."""
    _check_timesteps(timesteps)
    u = torch.rand((int(timesteps), *x.shape), generator=generator, device=x.device)
    p = (x.abs() / scale).clamp(max=1.0)
    return (u < p).to(x.dtype) * torch.sign(x) * scale


# --- deterministic spike trains ------------------------------------------------------------------

def regular_spikes(p: Tensor, timesteps: int) -> Tensor:
    """A regular train at ``p`` spikes per step (p in [0, 1]): [..., N] -> [T, ..., N], a spike at
    step t = 1..T iff floor(t p) > floor((t - 1) p) (an integrate-and-fire accumulator started at
    0 with threshold 1; the CartPole SNN's input, ``models.cartpole_snn``)."""
    _check_timesteps(timesteps)
    t = torch.arange(int(timesteps) + 1, dtype=p.dtype, device=p.device).view(-1, *([1] * p.dim()))
    count = torch.floor(t * p)  # spikes up to step t
    return count[1:] - count[:-1]


def periodic_spikes(x: Tensor, timesteps: int, period: int) -> Tensor:
    """x at steps k = 0, period, 2 period, ... of the window and 0 in between: [..., N] ->
    [T, ..., N] (an active input neuron firing regularly from the first step; Mountain Car's
    input, ``models.mountaincar_snn``)."""
    _check_timesteps(timesteps)
    if int(period) < 1:
        raise SpikeverseError(f"a periodic spike train needs a period >= 1 step, got {period}")
    fires = (torch.arange(int(timesteps), device=x.device) % int(period) == 0).to(x.dtype)
    return fires.view(-1, *([1] * x.dim())) * x


# --- population coding of continuous variables (seed 002) -------------------------------------

def _bounds(low: Bounds, high: Bounds, x: Tensor) -> tuple[Tensor, Tensor]:
    """low/high per variable (scalars or length-D sequences), broadcast over x's last dim."""
    lo = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    if not bool((hi > lo).all()):
        raise SpikeverseError(f"population coding needs high > low, got low={low}, high={high}")
    return lo, hi


def _check_n(n: int) -> None:
    if int(n) < 1:
        raise SpikeverseError(f"population coding needs n >= 1 neurons per variable, got {n}")


def bin_code(x: Tensor, n: int, low: Bounds, high: Bounds) -> Tensor:
    """One-hot bin coding: x [..., D] -> [..., D * n]; neuron i of variable d is 1 iff
    low + i w <= x_d < low + (i + 1) w with w = (high - low) / n. Values outside [low, high]
    fall in the edge bins (x = high is in the last bin).

    Seed 002 prints w = (min + max) / n; the bin width is (max - min) / n, used here.
    """
    _check_n(n)
    x = _float(x)
    lo, hi = _bounds(low, high, x)
    idx = torch.floor((x - lo) / (hi - lo) * n).clamp(0, n - 1).long()
    out = torch.nn.functional.one_hot(idx, n).to(x.dtype)
    return out.flatten(-2)


def gaussian_code(x: Tensor, n: int, low: Bounds, high: Bounds, sigma: float | None = None) -> Tensor:
    """Gaussian receptive fields: x [..., D] -> [..., D * n] with
    r_i = exp(-(clip(x_d, low, high) - mu_i)^2 / (2 sigma^2)), centres mu_i = low + i (high - low)/(n - 1)
    evenly spaced over [low, high] (one at the midpoint when n = 1). ``sigma`` is in units of x;
    None: the centre spacing (high - low) / max(n - 1, 1), per variable."""
    _check_n(n)
    x = _float(x)
    lo, hi = _bounds(low, high, x)
    xc = torch.minimum(torch.maximum(x, lo), hi).unsqueeze(-1)  # [..., D, 1]
    frac = torch.linspace(0, 1, n, dtype=x.dtype, device=x.device) if n > 1 else \
        torch.full((1,), 0.5, dtype=x.dtype, device=x.device)
    lo_, hi_ = lo.unsqueeze(-1), hi.unsqueeze(-1)
    mu = lo_ + frac * (hi_ - lo_)  # [D, n] or [n]
    if sigma is None:
        sig = (hi_ - lo_) / max(n - 1, 1)
    elif sigma > 0 and math.isfinite(sigma):
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    else:
        raise SpikeverseError(f"gaussian receptive fields need sigma > 0, got {sigma}")
    return torch.exp(-((xc - mu) / sig).square() / 2).flatten(-2)


# --- encoder objects: one interface for whole windows and single steps --------------------

@dataclass
class AnalogEncoder:
    """Constant current (seed 001). ``constant``: every step is the same, so a simulator may pass
    ``x`` itself with ``constant_input=True`` instead of the window."""

    constant = True

    def __call__(self, x: Tensor, timesteps: int) -> Tensor:
        return analog(x, timesteps)

    def step(self, x: Tensor) -> Tensor:
        return _float(x)


@dataclass
class PoissonEncoder:
    """Bernoulli rate coding with p = clip(gain * x, 0, 1) (seed 000); ``seed`` makes the spike
    trains reproducible (one generator per encoder, on ``device``, advanced by every call)."""

    gain: float = 1.0
    seed: int | None = None
    device: str | torch.device = "cpu"
    constant = False

    def __post_init__(self):
        if not self.gain >= 0:  # also NaN
            raise SpikeverseError(f"the Poisson gain must be >= 0, got {self.gain}")
        self.generator = None
        if self.seed is not None:
            self.generator = torch.Generator(device=self.device).manual_seed(int(self.seed))

    def __call__(self, x: Tensor, timesteps: int) -> Tensor:
        return poisson(x, timesteps, self.gain, self.generator)

    def step(self, x: Tensor) -> Tensor:
        return poisson_step(x, self.gain, self.generator)


@dataclass
class PopulationEncoder:
    """Population coding of x [..., D] into D * n neurons (seed 002): ``kind`` "bin" (one-hot) or
    "gaussian" (receptive fields, width ``sigma``), emitted as a constant current
    (``spikes=False``) or as Bernoulli spikes with p = rate (``spikes=True``, seeded)."""

    n: int
    low: Bounds
    high: Bounds
    kind: str = "bin"
    sigma: float | None = None
    spikes: bool = False
    seed: int | None = None
    device: str | torch.device = "cpu"

    def __post_init__(self):
        if self.kind not in ("bin", "gaussian"):
            raise SpikeverseError(f"unknown population code '{self.kind}' (choose bin or gaussian)")
        if int(self.n) != self.n or self.n < 1:
            raise SpikeverseError(f"a population code needs n >= 1 neurons per variable (--bins), got {self.n}")
        self._out = PoissonEncoder(1.0, self.seed, self.device) if self.spikes else AnalogEncoder()
        self.constant = self._out.constant

    def rates(self, x: Tensor) -> Tensor:
        """Per-neuron rates in [0, 1], [..., D * n]."""
        if self.kind == "bin":
            return bin_code(x, self.n, self.low, self.high)
        return gaussian_code(x, self.n, self.low, self.high, self.sigma)

    def __call__(self, x: Tensor, timesteps: int) -> Tensor:
        return self._out(self.rates(x), timesteps)

    def step(self, x: Tensor) -> Tensor:
        return self._out.step(self.rates(x))


ENCODER_OPTIONS = {"poisson": ("gain", "seed"), "analog": (), "bin": ("bins",), "gaussian": ("bins",)}  # what each takes


def encode_image(img, encoder: str, timesteps: int, *, gain: float = 1.0, bins: int = 4, seed: int = 0):
    """A greyscale image [H, W] in [0, 1] as a spike (or current) window [T, neurons] (numpy):
    every pixel is one input; ``poisson`` (rate = gain x intensity, seeded), ``analog`` (the
    intensity as a constant current), ``bin``/``gaussian`` (``bins`` neurons per pixel over [0, 1])."""
    x = torch.as_tensor(np.asarray(img).reshape(1, -1), dtype=torch.float32)  # [B=1, pixels]
    if encoder == "poisson":
        enc = PoissonEncoder(gain=gain, seed=seed)
    elif encoder == "analog":
        enc = AnalogEncoder()
    elif encoder in ("bin", "gaussian"):
        enc = PopulationEncoder(n=bins, low=0.0, high=1.0, kind=encoder)
        x = x.unsqueeze(-1)  # every pixel is one variable: [1, pixels, 1] -> [1, pixels, bins]
    else:
        raise SpikeverseError(f"unknown encoder '{encoder}' (choose from {', '.join(ENCODER_OPTIONS)})")
    return enc(x, timesteps).reshape(timesteps, -1).numpy()
