"""NoisyNet linear layer with factorised Gaussian noise (Fortunato et al. 2018; seed 000 sec. 3.5).

y = (mu_w + sigma_w * eps_w) x + (mu_b + sigma_b * eps_b), with factorised noise
eps_w = f(eps_out) f(eps_in)^T, eps_b = f(eps_out), f(x) = sign(x) sqrt(|x|), eps ~ N(0, 1).
Initialisation: mu ~ U[-1/sqrt(p), 1/sqrt(p)], sigma = sigma0 / sqrt(p) (p = fan-in, sigma0 = 0.5).
In eval mode the layer is deterministic and uses the means only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def scaled_noise(size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """f(eps) = sign(eps) sqrt(|eps|) with eps ~ N(0, 1)."""
    eps = torch.randn(size, generator=generator, device=device)
    return eps.sign() * eps.abs().sqrt()


class NoisyLinear(nn.Module):
    """Linear layer with learned, factorised Gaussian parameter noise."""

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        self.in_features, self.out_features, self.sigma0 = in_features, out_features, sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.sigma0 * bound)
        nn.init.constant_(self.bias_sigma, self.sigma0 * bound)

    @torch.no_grad()
    def reset_noise(self) -> None:
        """Draw fresh factorised noise eps_in, eps_out."""
        self.eps_in.copy_(scaled_noise(self.in_features, device=self.eps_in.device))
        self.eps_out.copy_(scaled_noise(self.out_features, device=self.eps_out.device))

    def noisy_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias used in training mode: mu + sigma * eps."""
        w = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        b = self.bias_mu + self.bias_sigma * self.eps_out
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            w, b = self.noisy_weight()
            return F.linear(x, w, b)
        return F.linear(x, self.weight_mu, self.bias_mu)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, sigma0={self.sigma0}"
