"""Q-networks: an MLP (classic control), the MinAtar CNN and the Nature CNN, with the Rainbow
head switches (dueling, noisy, C51) as parameters of one module (SPEC R-RL).

Layouts
- MLP: obs (flattened if it is an image) -> [Linear, ReLU] x len(hidden) -> head.
- MinAtar CNN (Young & Tian 2019): Conv 16x3x3/1, ReLU, Flatten, Linear 128, ReLU -> head.
- Nature CNN (Mnih et al. 2015): Conv 32x8x8/4, ReLU, Conv 64x4x4/2, ReLU, Conv 64x3x3/1, ReLU,
  Flatten, Linear 512, ReLU -> head. uint8 frames are scaled by 1/255 inside ``forward``.

The torso is a plain ``nn.Sequential`` of Conv2d/Linear/ReLU/Flatten so that ANN-to-SNN
conversion can walk it layer by layer. Heads:
- plain: Linear(h, A * atoms);
- dueling: Q = V + (A - mean_a A) (Wang et al. 2016), V: Linear(h, atoms), A: Linear(h, A * atoms);
- noisy: the head's linear layers are :class:`NoisyLinear` (noise on the output layer, seed 000 3.5);
- C51: atoms > 1, softmax over atoms per action, Q(s,a) = sum_j z_j p_j(s,a).

Directly trained spiking Q-network (DSQN, seed 003, Liu et al. 2022; ``spec.spiking`` a
``snn.config.SpikingConfig``): every hidden ReLU is a layer of LIF neurons in the DSQN form
(``snn.neurons.lif_dsqn_step``, hard reset by default, a surrogate gradient for the spike), the observation is the input current at every
one of T steps (no encoding; the first layer's current is computed once per window), and the
head reads the mean of the last hidden layer's spikes over the window:
O = W_L (1/T) sum_t S_{L-1,t}. Trained by backpropagation through the T steps.

Cost per decision (``snn.cost``; a ``CostMonitor`` sums it over an evaluation): every ``q_values``
call is described by ``call_cost()`` (``forward``, the training path, records nothing). A DQN
spends its MACs; a DSQN the first layer's MACs once per window (analog input), then one
accumulate per spike per outgoing synapse, the read-out's included (its T-step sum of spikes x
weights is T accumulations of spikes; the division by T is one scaling per output).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from spikeverse.errors import SpikeverseError
from spikeverse.rl.distributional import make_support
from spikeverse.rl.noisy import NoisyLinear
from spikeverse.snn.config import SpikingConfig
from spikeverse.snn.cost import CallCost, CostMeter, LayerCost, describe_layers
from spikeverse.snn.init import calibrate_firing
from spikeverse.snn.neurons import DSQNLIFNeuron, reset_net
from spikeverse.snn.simulate import WindowRecord, check_timesteps, run_window

ARCHITECTURES = ("mlp", "minatar", "nature")


@dataclass
class NetworkSpec:
    """Everything needed to rebuild a Q-network (saved in checkpoints)."""

    arch: str
    obs_shape: tuple[int, ...]
    num_actions: int
    hidden: tuple[int, ...] = (128, 128)
    dueling: bool = False
    noisy: bool = False
    noisy_sigma0: float = 0.5
    atoms: int = 1
    v_min: float = -10.0
    v_max: float = 10.0
    obs_scale: float = 1.0
    spiking: SpikingConfig | None = None  # DSQN: its spiking hidden layers; None: a ReLU network
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["obs_shape"] = list(self.obs_shape)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkSpec":
        d = dict(d)
        d["obs_shape"] = tuple(d["obs_shape"])
        d["hidden"] = tuple(d.get("hidden", ()))
        # checkpoints of before SpikingConfig hold a dict with the same keys, {} for no spiking
        d["spiking"] = SpikingConfig.from_dict(d["spiking"]) if d.get("spiking") else None
        return cls(**d)


def build_torso(spec: NetworkSpec) -> tuple[nn.Sequential, int]:
    """The feature extractor and its output width; with ``spec.spiking`` its ReLUs are DSQN LIF
    neurons."""
    torso, width = _relu_torso(spec)
    if not spec.spiking:
        return torso, width
    sp = spec.spiking
    return nn.Sequential(*[DSQNLIFNeuron(sp.tau, v_th=sp.v_th, reset=sp.reset, spike_fn=sp.spike_fn())
                           if isinstance(m, nn.ReLU) else m for m in torso]), width


def _relu_torso(spec: NetworkSpec) -> tuple[nn.Sequential, int]:
    if spec.arch == "mlp":
        # image observations (C, H, W) are flattened: a fully connected network on pixels (seed 000 8.1)
        layers: list[nn.Module] = [nn.Flatten()] if len(spec.obs_shape) != 1 else []
        width = int(torch.Size(spec.obs_shape).numel())
        for h in spec.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        return nn.Sequential(*layers), width
    if len(spec.obs_shape) != 3:
        raise SpikeverseError(f"the {spec.arch} CNN needs (C, H, W) observations, got {tuple(spec.obs_shape)}")
    c, h, w = spec.obs_shape
    if spec.arch == "minatar":
        convs = [nn.Conv2d(c, 16, 3, 1), nn.ReLU()]
        fc = spec.hidden[0] if spec.hidden else 128
    elif spec.arch == "nature":
        convs = [nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                 nn.Conv2d(64, 64, 3, 1), nn.ReLU()]
        fc = spec.hidden[0] if spec.hidden else 512
    else:
        raise SpikeverseError(f"unknown architecture '{spec.arch}' (choose from {', '.join(ARCHITECTURES)})")
    with torch.no_grad():
        flat = nn.Sequential(*convs, nn.Flatten())(torch.zeros(1, c, h, w)).shape[1]
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(flat, fc), nn.ReLU()), fc


class QNetwork(nn.Module):
    """A Q-network with optional dueling, noisy and categorical (C51) heads.

    ``forward(obs) -> Q [B, A]``; ``log_probs(obs) -> [B, A, atoms]`` when atoms > 1.
    Implements the :class:`spikeverse.policy.Policy` interface through ``q_values``.
    """

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        if spec.num_actions < 1:
            raise SpikeverseError("a Q-network needs at least one action")
        if spec.atoms < 1:
            raise SpikeverseError("atoms must be >= 1")
        if spec.atoms > 1 and not spec.v_min < spec.v_max:
            raise SpikeverseError(f"C51 needs v_min < v_max, got [{spec.v_min}, {spec.v_max}]")
        self.spec = spec
        self.num_actions = spec.num_actions
        self.torso, width = build_torso(spec)
        self.width = width
        linear = (lambda i, o: NoisyLinear(i, o, spec.noisy_sigma0)) if spec.noisy else nn.Linear
        self.advantage = linear(width, spec.num_actions * spec.atoms)
        self.value = linear(width, spec.atoms) if spec.dueling else None
        if spec.atoms > 1:
            self.register_buffer("support", make_support(spec.v_min, spec.v_max, spec.atoms))
        else:
            self.support = None
        self._timesteps: int | None = None  # DSQN: T of later calls if set (the spec keeps its own)
        self._costs: list[LayerCost] | None = None  # the layers' description, built on first use
        self._last: CallCost | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def timesteps(self) -> int | None:
        """DSQN: simulation steps T per decision (the spec's unless set; setting it leaves the
        spec as it is); None for an ANN."""
        if not self.spec.spiking:
            return None
        return self._timesteps if self._timesteps is not None else int(self.spec.spiking.timesteps)

    @timesteps.setter
    def timesteps(self, t: int) -> None:
        if not self.spec.spiking:
            raise SpikeverseError("only a spiking Q-network (DSQN) has timesteps")
        self._timesteps = check_timesteps(t)

    def features(self, obs: torch.Tensor, record: bool = False) -> torch.Tensor:
        """The torso's output [B, width]; ``record``: describe the call for ``call_cost()``."""
        x = obs.to(self.device, torch.float32)
        if self.spec.obs_scale != 1.0:
            x = x * self.spec.obs_scale
        if not self.spec.spiking:
            if record:
                self._measure(x.shape[0], None)
            return self.torso(x)
        # DSQN: the observation is a constant input current for T steps; the head reads the
        # mean spikes of the last hidden layer. State is dropped after the window.
        spikes, rec = run_window(list(self.torso), x, self.timesteps, record=record)
        reset_net(self.torso)
        if record:
            self._measure(x.shape[0], rec)
        return spikes.mean(0)

    @torch.no_grad()
    def calibrate(self, obs: torch.Tensor, rate: float) -> list[float]:
        """DSQN: scale each spiking layer's input synapses so that it fires at mean ``rate`` on
        ``obs`` (``snn.init.calibrate_firing``); returns the factors."""

        if not self.spec.spiking:
            raise SpikeverseError("only a spiking Q-network is calibrated")
        x = obs.to(self.device, torch.float32)
        if self.spec.obs_scale != 1.0:
            x = x * self.spec.obs_scale
        return calibrate_firing(list(self.torso), x, self.timesteps, rate)

    # ------------------------------------------------------- cost per decision

    def _layer_costs(self) -> list[LayerCost]:
        """The torso's synaptic layers and the head (``output``: A x atoms, plus the dueling value)."""
        torso = describe_layers(list(self.torso), self.spec.obs_shape, last_is_output=False,
                                spiking=bool(self.spec.spiking))
        outputs = self.spec.atoms * (self.num_actions + (1 if self.value is not None else 0))
        return torso + [LayerCost("output", outputs, self.width * outputs, spiking=False)]

    def _measure(self, batch: int, rec: WindowRecord | None) -> None:
        """Describe a call's decisions (DSQN: from its window record; DQN: MACs, no spikes)."""
        if self._costs is None:
            self._costs = self._layer_costs()
        n, T = len(self._costs), self.timesteps
        if rec is None:
            spikes = synops = [torch.zeros(batch)] * n
            layer_macs = [float(c.ann_macs) for c in self._costs]
        else:
            counts = [c.flatten(1).sum(1).cpu() for c in rec.spike_counts]
            head = counts[-1] * self._costs[-1].neurons  # each spike of the last layer reaches every output
            spikes = counts + [torch.zeros(batch)]
            synops = [torch.zeros(batch)] + [o.cpu() for o in rec.synops] + [head]
            layer_macs = [float(self._costs[0].ann_macs)] + [0.0] * (n - 1)
        steps = torch.full((batch,), float(T) if rec is not None else 1.0)
        self._last = CallCost(self._costs, spikes, synops, steps, layer_macs, T)

    def call_cost(self) -> CallCost | None:
        """What the last ``q_values`` call cost (``snn.cost.CallCost``); None before the first."""
        return self._last

    def diagnostics(self) -> dict:
        """The ``snn.cost.cost_report`` of the last ``q_values`` call; {} before the first."""
        meter = CostMeter()
        if self._last is not None:
            meter.add(self._last)
        return meter.report()

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Per-action outputs [B, A, atoms] (logits for C51, values otherwise).

        Dueling: out = V + (A - mean_a A), applied per atom.
        """
        adv = self.advantage(h).view(-1, self.num_actions, self.spec.atoms)
        if self.value is None:
            return adv
        v = self.value(h).view(-1, 1, self.spec.atoms)
        return v + adv - adv.mean(dim=1, keepdim=True)

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """log p_j(s, a) over the atoms, [B, A, atoms] (C51 only)."""
        return torch.log_softmax(self.head(self.features(obs)), dim=-1)

    def forward(self, obs: torch.Tensor, record: bool = False) -> torch.Tensor:
        out = self.head(self.features(obs, record))
        if self.support is None:
            return out.squeeze(-1)
        return (out.softmax(dim=-1) * self.support).sum(-1)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q [B, A], as ``forward``, and the call described for ``call_cost()``."""
        return self(obs, record=True)

    def reset_noise(self) -> None:
        for m in self.modules():
            if isinstance(m, NoisyLinear):
                m.reset_noise()
