"""Adversarial perturbation of what an agent observes: the fast gradient sign method (FGSM) of
Goodfellow, Shlens & Szegedy (ICLR 2015), as Chen et al. (2022) use it against spiking
Q-networks; the ``fgsm`` kind of SPEC R-ANA-ROBUST (issue 13).

One step in the L-infinity ball of radius eps x scale around the observation x:

    x' = clip(x + eps scale sign(grad_x L(x)), low, high),  L(x) = -log softmax(Q(x))_{a*(x)},

the cross-entropy of the gradient network's Q-values (read as logits) against its own greedy
action a*(x) = argmax_a Q(x, a), so the step pushes away from the action it would take. ``scale``
is gaussian's (``envs.perturbations``): per-feature std over the reference's play for vector
observations, high - low for images. eps = 0 returns the observation unchanged; no randomness.

Modes (the same step, a different gradient network):
- ``transfer``: the gradient of a given reference network (typically the source DQN), applied to
  whatever agent plays;
- ``white-box``: the acting agent's own gradient (the caller passes the agent as the network).

Gradient networks: a :class:`~spikeverse.rl.networks.QNetwork` (DQN: autograd; DSQN: through
its own surrogate spike function over the whole window) or a converted
:class:`~spikeverse.convert.spiking.SpikingQNetwork`, whose Heaviside spikes have no gradient:
for the attack its window is simulated again with a surrogate spike function (forward exactly
H, backward ``snn.surrogates``' derivative, atan by default) through all T steps and the same
readout; its normal play, weights, neuron state and last call's record are left as they were.
Poisson-encoded SNNs are differentiated through their expected input (the analog window).
Anything else (tabular, evolved numpy SNNs) has no gradient and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from spikeverse.convert.graph import FlatQNetwork
from spikeverse.convert.spiking import SpikingQNetwork, readout
from spikeverse.envs.perturbations import valid_range
from spikeverse.errors import SpikeverseError
from spikeverse.rl.networks import QNetwork
from spikeverse.snn.cost import CostMonitor
from spikeverse.snn.simulate import is_stateful, run_window
from spikeverse.snn.surrogates import surrogate as make_surrogate

MODES = ("transfer", "white-box")


def unwrap(policy: Any) -> Any:
    """The policy a ``snn.cost.CostMonitor`` plays (monitors inside monitors too), else ``policy``."""
    while isinstance(policy, CostMonitor):
        policy = policy.policy
    return policy


def gradient_network(policy: Any) -> QNetwork | FlatQNetwork | SpikingQNetwork | None:
    """The differentiable network behind ``policy`` (:func:`unwrap`), or None: Q(x) has no gradient.
    A ``FlatQNetwork`` is the ANN a converted SNN keeps of its source DQN (the study's reference)."""
    net = unwrap(policy)
    return net if isinstance(net, (QNetwork, FlatQNetwork, SpikingQNetwork)) else None


def surrogate_q_values(snn: SpikingQNetwork, x: torch.Tensor, spike_fn: nn.Module) -> torch.Tensor:
    """Q(x) = readout(N, V(T)) of one full window with spikes s = spike_fn(u - v_th) (forward H,
    backward the surrogate), differentiable in x; the SNN's spike functions and state restored."""
    neurons = [m for m in snn.layers if is_stateful(m)]
    saved = [(m.spike_fn, m.v, getattr(m, "refractory", None)) for m in neurons]
    if snn.encoding == "poisson":  # the rate code's expected input, x_max sign(x) min(|x| / x_max, 1)
        x = x.clamp(-snn.input_scale, snn.input_scale)
    step = spike_fn.forward  # a plain callable: the neurons keep it as an attribute, not a child module
    try:
        for m in neurons:
            m.spike_fn = step
        spikes, _ = run_window(list(snn.layers), x, snn.timesteps, record=False, chunk=snn.timesteps)
        return readout(snn.readout, spikes.sum(0), neurons[-1].v, snn.timesteps, snn.v_th, snn.v_init)
    finally:
        for m, (fn, v, refractory) in zip(neurons, saved):
            m.spike_fn, m.v = fn, v
            if hasattr(m, "refractory"):
                m.refractory = refractory


def q_with_grad(net: QNetwork | SpikingQNetwork, x: torch.Tensor, spike_fn: nn.Module) -> torch.Tensor:
    """Q(x) [B, A] with a graph back to x: QNetwork's forward (DSQN: its own surrogate), a
    converted SNN's window with ``spike_fn`` (:func:`surrogate_q_values`)."""
    if isinstance(net, SpikingQNetwork):
        return surrogate_q_values(net, x, spike_fn)
    return net(x)


def loss_direction(q: torch.Tensor) -> torch.Tensor:
    """dL/dQ = softmax(Q) - onehot(a*) per sample, divided by the largest non-greedy probability:
    w_a = exp(Q_a - max_{b != a*} Q_b) (a != a*), w_a* = -sum_{a != a*} w_a (same signs, no underflow)."""
    q = q.detach().double()
    if q.shape[-1] < 2:
        return torch.zeros_like(q)
    greedy = q.argmax(-1, keepdim=True)
    others = q.scatter(-1, greedy, float("-inf"))
    w = (others - others.max(-1, keepdim=True).values).exp()
    return w.scatter(-1, greedy, -w.sum(-1, keepdim=True))


def input_gradient(net: QNetwork | SpikingQNetwork, obs: np.ndarray, spike_fn: nn.Module) -> np.ndarray:
    """grad_x L(x) per sample, L = -log softmax(Q(x))_{argmax_a Q(x, a)}, up to a positive factor
    per sample (:func:`loss_direction`: a confident network's saturated softmax cannot zero it),
    as float64; the network's parameter gradients are left alone."""
    x = torch.as_tensor(np.asarray(obs, np.float32), device=net.device).requires_grad_(True)
    with torch.enable_grad():
        q = q_with_grad(net, x, spike_fn)
        (grad,) = torch.autograd.grad(q, x, grad_outputs=loss_direction(q).to(q.dtype), allow_unused=True)
    if grad is None:
        return np.zeros(np.shape(obs))
    return grad.detach().cpu().double().numpy()


@dataclass
class FGSM:
    """x' = clip(x + eps scale sign(grad_x L(x)), low, high) for batches shaped like ``low``;
    called as an ``envs.perturbations.Perturbation``: ``p(obs [B, ...], episodes, steps)``.

    ``mode``: transfer or white-box; ``strength``: eps >= 0; ``network``: the gradient network
    (the reference for transfer, the acting agent for white-box); ``low``/``high``: the valid
    range (finite); ``scale``: per-feature units of eps (default high - low); ``dtype``: the
    observations' dtype, kept (integer observations move by whole units inside the ball,
    floor(eps scale)); ``surrogate``/``alpha``: a converted SNN's surrogate spike function."""

    mode: str
    strength: float
    low: np.ndarray
    high: np.ndarray
    network: Any
    scale: np.ndarray | None = None
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    surrogate: str = "atan"
    alpha: float | None = None
    kind: ClassVar[str] = "fgsm"

    def __post_init__(self):
        """Check mode, eps >= 0 and finite bounds; scale = high - low unless given; find the gradient network."""
        if self.mode not in MODES:
            raise SpikeverseError(f"fgsm has no mode {self.mode!r} (choose from {', '.join(MODES)})")
        if not (np.isfinite(self.strength) and self.strength >= 0):
            raise SpikeverseError(f"fgsm: eps must be finite and >= 0, got {self.strength}")
        self.low, self.high, self.scale = valid_range(self.low, self.high, self.scale, "fgsm")
        self.dtype = np.dtype(self.dtype)
        self.net = gradient_network(self.network)
        if self.net is None:
            what = "white-box fgsm needs the agent's own gradient" if self.mode == "white-box" else \
                "transfer fgsm needs a differentiable reference"
            raise SpikeverseError(f"{what}: {type(unwrap(self.network)).__name__} has none (a DQN, DSQN or converted SNN has)")
        self.spike_fn = make_surrogate(self.surrogate, self.alpha)

    @property
    def eps(self) -> float:
        """The step size in units of ``scale``."""
        return float(self.strength)

    def step(self) -> np.ndarray:
        """The step size per input, d = eps scale (integer dtypes: floor(eps scale))."""
        d = self.strength * self.scale
        return np.floor(d + 1e-9) if np.issubdtype(self.dtype, np.integer) else d

    def __call__(self, obs: np.ndarray, episodes=None, steps=None) -> np.ndarray:
        """The attacked batch x' = clip(x + d sign(grad_x L(x)), low, high) (a new array)."""
        obs = np.asarray(obs)
        if tuple(obs.shape[1:]) != self.low.shape:
            raise SpikeverseError(f"fgsm: observations of shape {tuple(obs.shape[1:])}, bounds of {self.low.shape}")
        if self.strength == 0:
            return obs.copy()
        x = obs.astype(np.float64)
        g = input_gradient(self.net, obs, self.spike_fn)
        x = np.clip(x + self.step() * np.sign(g), self.low, self.high)
        if np.issubdtype(self.dtype, np.integer):
            x = np.rint(x)
        return x.astype(self.dtype)
