"""Surrogate gradients (SPEC R-SNN-SURR): forward the exact step, backward a smooth derivative.

A spike is s = H(x) with H(x) = 1 for x >= 0, else 0, and x = v - v_th. H has zero gradient
almost everywhere, so for training the backward pass replaces dH/dx by a surrogate g'(x), the
derivative of a smooth step g (seed 000 sec. 6.2: H -> H~ in the backward pass only).

One autograd mechanism (:class:`_SurrogateStep`) serves every surrogate; a surrogate is just a
:class:`SurrogateSpec` holding its derivative g'(x; alpha) and primitive g(x; alpha), with
g(-inf) = 0. ``alpha`` is the surrogate's single shape parameter; its meaning (slope or width)
and its name in the source are given per surrogate:

================  ====================================  ==========  =======================
name              g'(x) (the surrogate derivative)      default     source
================  ====================================  ==========  =======================
fast_sigmoid      1 / (1 + alpha |x|)^2                 alpha = 1   seed 000; snnTorch
exponential       exp(-(alpha x)^2)                     alpha = 1   seed 000
piecewise_linear  max(0, 1 - alpha |x|)                 alpha = 1   seed 000
cosh              1 / cosh^2(alpha x)                   alpha = 1   seed 000
atan              (alpha/2) / (1 + (pi/2 alpha x)^2)    alpha = 2   seed 003; SpikingJelly
rectangular       (1/a1) [|x| < a1/2]                   a1 = 1      seed 002 eq. 4 (STBP h1)
polynomial        max(0, sqrt(a2)/2 - a2/4 |x|)         a2 = 1      seed 002 eq. 5 (STBP h2)
sigmoid           (1/a3) e^(-x/a3) / (1 + e^(-x/a3))^2  a3 = 1      seed 002 eq. 6 (STBP h3)
gaussian          exp(-x^2 / (2 a4)) / sqrt(2 pi a4)    a4 = 1      seed 002 eq. 7 (STBP h4)
================  ====================================  ==========  =======================

For the first five alpha is a slope (larger = sharper); for h1..h4 a_i is a width (larger =
wider). Seed 000 prints its four derivatives unnormalised (peak 1, alpha = 1); alpha scales the
argument as in snnTorch (whose fast_sigmoid default is slope 25), so their primitives rise from
0 to the area under g' (2/alpha, sqrt(pi)/alpha, 1/alpha, 2/alpha), not to 1.
``atan`` and the STBP curves h1..h4 have unit area: g is a smooth step from 0 to 1.

Seed 002 reprints Wu et al. 2018 (STBP) with typesetting damage in h2 and h4; we implement the
original: h2 = (sqrt(a2)/2 - a2/4 |x|) sign(2/sqrt(a2) - |x|), read with the sign as the
indicator of its support (its literal sign would make h2 grow outside), and h4 = the normal
density of variance a4. Both then integrate to 1, as h1 and h3 do.

Aliases: ``arctan`` -> atan, ``triangle`` -> piecewise_linear, ``h1``..``h4`` -> rectangular,
polynomial, sigmoid, gaussian (the STBP curves). Note that ``gaussian`` is STBP's normalised
h4; seed 000's unnormalised exp(-x^2) is ``exponential``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from spikeverse.errors import SpikeverseError

Fn = Callable[[Tensor, float], Tensor]


def heaviside(x: Tensor) -> Tensor:
    """The spike function H(x) = 1 for x >= 0, else 0 (seed 001 eq. 2), in x's dtype; no gradient."""
    return (x >= 0).to(x.dtype)


class _SurrogateStep(torch.autograd.Function):
    """Forward: H(x). Backward: grad_out * derivative(x, alpha)."""

    @staticmethod
    def forward(ctx, x: Tensor, derivative: Fn, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.derivative, ctx.alpha = derivative, alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.derivative(x, ctx.alpha), None, None


@dataclass(frozen=True)
class SurrogateSpec:
    """One surrogate: its derivative g'(x; alpha), its primitive g(x; alpha) with g(-inf) = 0, the
    parameter's name in the source and its default, the formula and where it comes from."""

    name: str
    derivative: Fn
    primitive: Fn
    param: str
    default: float
    formula: str
    source: str


# --- seed 000 sec. 6.3 (unnormalised, argument scaled by the slope alpha) -----------------------

def _fast_sigmoid_d(x: Tensor, a: float) -> Tensor:
    return (1 + a * x.abs()).reciprocal().square()


def _fast_sigmoid_g(x: Tensor, a: float) -> Tensor:
    return x / (1 + a * x.abs()) + 1 / a


def _exponential_d(x: Tensor, a: float) -> Tensor:
    return torch.exp(-(a * x).square())


def _exponential_g(x: Tensor, a: float) -> Tensor:
    return (math.sqrt(math.pi) / (2 * a)) * (1 + torch.erf(a * x))


def _piecewise_linear_d(x: Tensor, a: float) -> Tensor:
    return (1 - a * x.abs()).clamp(min=0)


def _piecewise_linear_g(x: Tensor, a: float) -> Tensor:
    u = (a * x).clamp(-1, 1)
    return (u - u * u.abs() / 2 + 0.5) / a


def _cosh_d(x: Tensor, a: float) -> Tensor:
    return torch.cosh(a * x).reciprocal().square()


def _cosh_g(x: Tensor, a: float) -> Tensor:
    return (1 + torch.tanh(a * x)) / a


# --- seed 003 / SpikingJelly ATan ----------------------------------------------------------------

def _atan_d(x: Tensor, a: float) -> Tensor:
    return (a / 2) / (1 + (math.pi / 2 * a * x).square())


def _atan_g(x: Tensor, a: float) -> Tensor:
    return torch.atan(math.pi / 2 * a * x) / math.pi + 0.5


# --- seed 002 eq. 4-7, STBP h1..h4 (unit area; a_i sets the peak width) -----------------------

def _rectangular_d(x: Tensor, a: float) -> Tensor:
    return (x.abs() < a / 2).to(x.dtype) / a


def _rectangular_g(x: Tensor, a: float) -> Tensor:
    return (x / a + 0.5).clamp(0, 1)


def _polynomial_d(x: Tensor, a: float) -> Tensor:
    return (math.sqrt(a) / 2 - a / 4 * x.abs()).clamp(min=0)


def _polynomial_g(x: Tensor, a: float) -> Tensor:
    c = 2 / math.sqrt(a)  # half-width of the support
    u = x.clamp(-c, c)
    return math.sqrt(a) / 2 * u - a / 8 * u * u.abs() + 0.5


def _sigmoid_d(x: Tensor, a: float) -> Tensor:
    s = torch.sigmoid(x / a)
    return s * (1 - s) / a


def _sigmoid_g(x: Tensor, a: float) -> Tensor:
    return torch.sigmoid(x / a)


def _gaussian_d(x: Tensor, a: float) -> Tensor:
    return torch.exp(-x.square() / (2 * a)) / math.sqrt(2 * math.pi * a)


def _gaussian_g(x: Tensor, a: float) -> Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2 * a)))


SURROGATES: dict[str, SurrogateSpec] = {s.name: s for s in (
    SurrogateSpec("fast_sigmoid", _fast_sigmoid_d, _fast_sigmoid_g, "alpha", 1.0,
                  "1/(1+alpha|x|)^2", "seed 000 sec. 6.3 (snnTorch fast_sigmoid)"),
    SurrogateSpec("exponential", _exponential_d, _exponential_g, "alpha", 1.0,
                  "exp(-(alpha x)^2)", "seed 000 sec. 6.3"),
    SurrogateSpec("piecewise_linear", _piecewise_linear_d, _piecewise_linear_g, "alpha", 1.0,
                  "max(0, 1-alpha|x|)", "seed 000 sec. 6.3"),
    SurrogateSpec("cosh", _cosh_d, _cosh_g, "alpha", 1.0,
                  "1/cosh^2(alpha x)", "seed 000 sec. 6.3"),
    SurrogateSpec("atan", _atan_d, _atan_g, "alpha", 2.0,
                  "(alpha/2)/(1+(pi/2 alpha x)^2)", "seed 003 (SpikingJelly ATan)"),
    SurrogateSpec("rectangular", _rectangular_d, _rectangular_g, "a1", 1.0,
                  "(1/a1) [|x| < a1/2]", "seed 002 eq. 4 (STBP h1)"),
    SurrogateSpec("polynomial", _polynomial_d, _polynomial_g, "a2", 1.0,
                  "max(0, sqrt(a2)/2 - a2/4 |x|)", "seed 002 eq. 5 (STBP h2)"),
    SurrogateSpec("sigmoid", _sigmoid_d, _sigmoid_g, "a3", 1.0,
                  "(1/a3) e^(-x/a3)/(1+e^(-x/a3))^2", "seed 002 eq. 6 (STBP h3)"),
    SurrogateSpec("gaussian", _gaussian_d, _gaussian_g, "a4", 1.0,
                  "exp(-x^2/(2 a4))/sqrt(2 pi a4)", "seed 002 eq. 7 (STBP h4)"),
)}

ALIASES: dict[str, str] = {
    "arctan": "atan", "triangle": "piecewise_linear",
    "h1": "rectangular", "h2": "polynomial", "h3": "sigmoid", "h4": "gaussian",
}


class Surrogate(nn.Module):
    """A spike function: ``s(x)`` = H(x) forward, ``grad * derivative(x)`` backward.

    ``derivative(x)`` and ``primitive(x)`` evaluate g' and g analytically (no autograd). The
    module has no parameters; ``alpha`` is a fixed shape hyperparameter.
    """

    def __init__(self, spec: SurrogateSpec, alpha: float | None = None):
        super().__init__()
        alpha = spec.default if alpha is None else float(alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise SpikeverseError(f"surrogate '{spec.name}': {spec.param} must be a positive number, got {alpha}")
        self.spec, self.name, self.alpha = spec, spec.name, alpha

    def forward(self, x: Tensor) -> Tensor:
        return _SurrogateStep.apply(x, self.spec.derivative, self.alpha)

    def derivative(self, x: Tensor) -> Tensor:
        """g'(x): the surrogate derivative used in the backward pass."""
        return self.spec.derivative(x, self.alpha)

    def primitive(self, x: Tensor) -> Tensor:
        """g(x): the smooth step whose derivative is the surrogate, with g(-inf) = 0."""
        return self.spec.primitive(x, self.alpha)

    def extra_repr(self) -> str:
        return f"{self.name}, {self.spec.param}={self.alpha:g}"


def surrogate(name: str, alpha: float | None = None) -> Surrogate:
    """The spike function of surrogate ``name`` (or an alias) with parameter ``alpha``
    (None: the surrogate's default). Unknown names raise :class:`SpikeverseError`."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in SURROGATES:
        raise SpikeverseError(f"unknown surrogate '{name}' (choose from {', '.join(SURROGATES)};"
                              f" aliases {', '.join(ALIASES)})")
    return Surrogate(SURROGATES[key], alpha)
