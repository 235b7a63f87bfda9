"""The Mountain Car spiking policy that seed 002 evolves (sec. 3.3, Fig. 11; Yegenoglu et al.'s
learning-to-learn network, L2L's ``mc_gym`` optimizee), and its fitness.

Network, for one environment step (one 20 ms window):
- input: position in [-1.2, 0.6] and velocity in [-0.07, 0.07], each coded by ``bins`` = 30
  neurons (``snn.encoders.bin_code``: one active neuron per variable, edge bins take the values
  outside). The two active neurons fire at ``input_rate`` (default 1000 Hz: a spike at t = 0,
  1, 2, ... ms; L2L drives its active input neuron with a 40 nA DC current, so that it fires at
  its maximal rate, about every 1.2 ms), the others are silent.
- hidden: ``hidden`` neurons (default 5), all-to-all from the 2 x 30 inputs;
  output: 3 neurons (push left, no push, push right), all-to-all from the hidden layer.
- neurons (``neuron``): ``lif``, seed 002 eq. 1 tau dv/dt = -(v - v_rest) + R I integrated by
  ``snn.neurons.lif_step`` (tau 10 ms, v_rest = v_reset = 0, v_th 1, hard reset, dt 1 ms, unit
  capacitance so R = tau), a spike of weight w delivering the charge w (a current w / dt during
  the step it arrives in): it raises v by w (tau / dt)(1 - e^{-dt/tau}) = 0.95 w, so a weight of
  about 1 fires a neuron at rest; or ``iaf_psc_alpha``, NEST's neuron with its defaults
  (``snn.alpha``, dt 0.1 ms), a weight of 1 being 1000 pA (about the weight whose single PSP
  reaches the threshold from rest; seed 002's two-neuron experiment uses it; L2L's genome
  ranges over +-20 x 100 pA). In both models a gene of 1 is a strong synapse, so the mutation
  N(0, 1) of seed 002 is a step on the scale of the weights. Spikes reach the next layer in the
  step they are emitted in.
- every window starts from rest; action = the output neuron with the most spikes, where left
  (0) or right (2) needs strictly more spikes than both others and anything else (ties,
  silence) is no push (1), L2L's rule.

Genome: the flat vector of all weights, input -> hidden ([2 bins, hidden], row-major: the
weight from input i to hidden j is gene i * hidden + j; position inputs first) then hidden ->
output ([hidden, 3]): 60 x 5 + 5 x 3 = 315 genes by default, L2L's layout. No biases or
thresholds: seed 002 and L2L evolve weights only.

Fitness (seed 002 eq. 15): f = max_t p_t over the positions after each of the first T = 110
steps of ``MountainCar-v0``, the episode ending earlier when the env ends it (goal p >= 0.5; the
200-step limit). Every individual of generation g starts from the state that
``reset(seed=derive_seed(seed, g))`` gives: selection compares networks on the same task, as L2L
does (``env.reset(seed=generation)``).

Speed and exactness: a window from rest with deterministic input depends on the state only
through its (position bin, velocity bin), so :func:`response_table` simulates the 30 x 30
windows of every individual at once (batched in torch) and the rollout looks the actions up;
this is exactly simulating each visited state's window (:func:`window_counts`; tested). Only
elementwise tensor operations are used (no matrix products, whose summation order may depend on
the batch), so an individual's fitness does not depend on which others share its batch: any
number of workers gives the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError
from spikeverse.evo.executor import derive_seed
from spikeverse.snn.alpha import AlphaParams, alpha_propagators, alpha_state, iaf_psc_alpha_step
from spikeverse.snn.encoders import bin_code
from spikeverse.snn.neurons import lif_step, time_grid

ENV_ID = "MountainCar-v0"
LOW = (-1.2, -0.07)  # position, velocity (the env's observation bounds)
HIGH = (0.6, 0.07)
ACTIONS = ("left", "none", "right")
NEURONS = ("lif", "iaf_psc_alpha")
ALPHA_WEIGHT_PA = 1000.0  # pA per unit of genome
LIF = dict(tau=10.0, v_rest=0.0, v_th=1.0, v_reset=0.0)  # ms, dimensionless; R = tau (unit capacitance)
_DTYPE = torch.float64


@dataclass(frozen=True)
class MountainCarSNN:
    """The network, its simulation and the episode that scores it; ``init_sigma`` is the
    standard deviation of the initial population's genes, N(0, init_sigma^2)."""

    hidden: int = 5
    neuron: str = "lif"
    bins: int = 30
    window_ms: float = 20.0
    dt: float | None = None  # ms; None: 1 (lif), 0.1 (iaf_psc_alpha, NEST's default resolution)
    input_rate: float = 1000.0  # Hz, of the active input neurons
    steps: int = 110  # environment steps per episode (seed 002's T)
    init_sigma: float = 2.0

    def __post_init__(self):
        if self.neuron not in NEURONS:
            raise SpikeverseError(f"unknown neuron model '{self.neuron}' (choose {' or '.join(NEURONS)})")
        if self.dt is None:
            object.__setattr__(self, "dt", 1.0 if self.neuron == "lif" else 0.1)
        checks = [(self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}"),
                  (self.bins >= 1, f"bins must be >= 1, got {self.bins}"),
                  (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
                  (self.init_sigma > 0, f"init_sigma must be > 0, got {self.init_sigma}"),
                  (self.input_rate > 0, f"input_rate must be > 0 Hz, got {self.input_rate}")]
        for ok, msg in checks:
            if not ok:
                raise SpikeverseError(msg)
        if self.input_period_steps < 1:
            raise SpikeverseError(f"input_rate {self.input_rate} Hz exceeds one spike per step of {self.dt} ms")
        time_grid(self.window_ms, self.dt)

    # --- layout ---------------------------------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        return 2 * self.bins

    @property
    def n_params(self) -> int:
        return self.n_inputs * self.hidden + self.hidden * len(ACTIONS)

    @property
    def window_steps(self) -> int:
        return time_grid(self.window_ms, self.dt)

    @property
    def input_period_steps(self) -> int:
        """Steps between two spikes of an active input neuron, 1000 / (rate dt), rounded."""
        return round(1000.0 / (self.input_rate * self.dt))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MountainCarSNN":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def unpack(self, genomes) -> tuple[Tensor, Tensor]:
        """Genomes [B, P] (or [P]) -> weights input -> hidden [B, 2 bins, hidden] and hidden ->
        output [B, hidden, 3], float64 (in pA for iaf_psc_alpha)."""
        g = torch.as_tensor(np.asarray(genomes, dtype=np.float64))
        if g.ndim == 1:
            g = g.unsqueeze(0)
        if g.ndim != 2 or g.shape[1] != self.n_params:
            raise SpikeverseError(f"a genome of this network has {self.n_params} genes, got shape {tuple(g.shape)}")
        if self.neuron == "iaf_psc_alpha":
            g = g * ALPHA_WEIGHT_PA
        n_in = self.n_inputs * self.hidden
        return (g[:, :n_in].reshape(-1, self.n_inputs, self.hidden),
                g[:, n_in:].reshape(-1, self.hidden, len(ACTIONS)))

    def pack(self, w_in: Tensor, w_out: Tensor) -> np.ndarray:
        """The inverse of :meth:`unpack`: weights -> genomes [B, P]."""
        g = torch.cat([w_in.reshape(w_in.shape[0], -1), w_out.reshape(w_out.shape[0], -1)], dim=1)
        if self.neuron == "iaf_psc_alpha":
            g = g / ALPHA_WEIGHT_PA
        return g.to(_DTYPE).numpy()

    def initial_population(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n genomes with genes drawn from N(0, init_sigma^2)."""
        return rng.normal(0.0, self.init_sigma, size=(n, self.n_params))

    # --- one window --------------------------------------------------------------------------

    def state_bins(self, obs) -> Tensor:
        """Observations [..., 2] -> (position bin, velocity bin) [..., 2], by ``bin_code``."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        code = bin_code(x, self.bins, LOW, HIGH)
        return code.reshape(*x.shape[:-1], 2, self.bins).argmax(-1)

    def _simulate(self, drive_ex: Tensor, drive_in: Tensor, w_out: Tensor) -> tuple[Tensor, Tensor]:
        """One window from rest. ``drive_ex``/``drive_in`` [B, ..., hidden]: the summed positive /
        negative weights of the active inputs onto each hidden neuron; ``w_out`` [B, hidden, 3].
        Returns the spike counts of the output [B, ..., 3] and hidden [B, ..., hidden] layers."""
        lead = drive_ex.shape[:-1]
        w = w_out.reshape(w_out.shape[0], *([1] * (len(lead) - 1)), self.hidden, len(ACTIONS))
        w_pos, w_neg = w.clamp_min(0), w.clamp_max(0)
        hid, out = _layer(self, (*lead, self.hidden)), _layer(self, (*lead, len(ACTIONS)))
        zero_h = torch.zeros_like(drive_ex)
        n_hid = torch.zeros_like(drive_ex)
        n_out = torch.zeros((*lead, len(ACTIONS)), dtype=_DTYPE)
        for k in range(self.window_steps):
            fires = k % self.input_period_steps == 0
            s_h = hid.step(drive_ex if fires else zero_h, drive_in if fires else zero_h)
            o_ex, o_in = None, None
            for j in range(self.hidden):  # sum_j s_j w_j, in a fixed order (exact for any batch)
                sj = s_h[..., j:j + 1]
                o_ex = sj * w_pos[..., j, :] if o_ex is None else o_ex + sj * w_pos[..., j, :]
                o_in = sj * w_neg[..., j, :] if o_in is None else o_in + sj * w_neg[..., j, :]
            n_out = n_out + out.step(o_ex, o_in)
            n_hid = n_hid + s_h
        return n_out, n_hid

    def _drive(self, w_in: Tensor, p: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Summed positive and negative weights of the active position (p) and velocity (v) inputs."""
        pos, neg = w_in.clamp_min(0), w_in.clamp_max(0)
        return pos[:, p] + pos[:, self.bins + v], neg[:, p] + neg[:, self.bins + v]

    def window_counts(self, genomes, obs) -> tuple[Tensor, Tensor]:
        """Spike counts of one 20 ms window from rest for observation(s) ``obs`` ([2], one for
        all genomes, or [B, 2], one per genome): output [B, 3] and hidden [B, hidden]."""
        w_in, w_out = self.unpack(genomes)
        idx = self.state_bins(obs)
        if idx.ndim == 1:
            idx = idx.expand(w_in.shape[0], 2)
        rows = torch.arange(w_in.shape[0])
        pos, neg = w_in.clamp_min(0), w_in.clamp_max(0)
        ex = pos[rows, idx[:, 0]] + pos[rows, self.bins + idx[:, 1]]
        inh = neg[rows, idx[:, 0]] + neg[rows, self.bins + idx[:, 1]]
        return self._simulate(ex, inh, w_out)

    def response_table(self, genomes) -> Tensor:
        """Output spike counts of the window of every (position bin, velocity bin):
        [B, bins, bins, 3] (seed 002 Figs. 13-15 are its three [bins, bins] slices)."""
        w_in, w_out = self.unpack(genomes)
        b = torch.arange(self.bins)
        ex, inh = self._drive(w_in, b[:, None], b[None, :])  # [B, bins, bins, hidden]
        return self._simulate(ex, inh, w_out)[0]

    # --- episodes ----------------------------------------------------------------------------

    def rollout(self, genomes, reset_seeds: Sequence[int], *, record: bool = False) -> dict:
        """Run one episode of at most ``steps`` steps per genome, genome b starting from
        ``reset(seed=reset_seeds[b])``. Returns {"fitness": [B] max position}; with ``record``
        also "position", "velocity" [B, steps + 1] (the start first; NaN after the end),
        "action" [B, steps] (-1 after the end) and "counts" [B, steps, 3] (output spikes)."""
        from spikeverse.envs import make

        table = self.response_table(genomes)
        actions = decide(table).numpy()
        counts = table.numpy()
        n = actions.shape[0]
        if len(reset_seeds) != n:
            raise SpikeverseError(f"{n} genomes need {n} reset seeds, got {len(reset_seeds)}")
        envs = [make(ENV_ID) for _ in range(n)]
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, reset_seeds)])
        best = np.full(n, -np.inf)
        alive = np.ones(n, dtype=bool)
        rec = dict(position=np.full((n, self.steps + 1), np.nan), velocity=np.full((n, self.steps + 1), np.nan),
                   action=np.full((n, self.steps), -1), counts=np.zeros((n, self.steps, len(ACTIONS)))) if record else None
        if record:
            rec["position"][:, 0], rec["velocity"][:, 0] = obs[:, 0], obs[:, 1]
        try:
            for t in range(self.steps):
                live = np.flatnonzero(alive)
                if live.size == 0:
                    break
                idx = self.state_bins(obs[live]).numpy()
                for b, (p, v) in zip(live, idx):
                    a = int(actions[b, p, v])
                    o, _, terminated, truncated, _ = envs[b].step(a)
                    obs[b] = o
                    best[b] = max(best[b], float(o[0]))
                    alive[b] = not (terminated or truncated)
                    if record:
                        rec["position"][b, t + 1], rec["velocity"][b, t + 1] = o[0], o[1]
                        rec["action"][b, t], rec["counts"][b, t] = a, counts[b, p, v]
        finally:
            for env in envs:
                env.close()
        return {"fitness": best, **(rec or {})}

    def fitness(self, genomes, keys: Sequence[tuple[int, int, int]]) -> list[float]:
        """Seed 002 eq. 15 for each genome; ``keys`` [(seed, generation, index)]: every genome of
        one generation starts from ``reset(seed=derive_seed(seed, generation))``."""
        seeds = [reset_seed(s, g) for s, g, _ in keys]
        return [float(f) for f in self.rollout(genomes, seeds)["fitness"]]


def reset_seed(seed: int, generation: int) -> int:
    """The env seed of every evaluation of ``generation`` in a run of ``seed``."""
    return derive_seed(seed, generation, "reset")


def decide(counts: Tensor) -> Tensor:
    """Action from output spike counts [..., 3]: 0 (left) or 2 (right) when that neuron has
    strictly more spikes than both others, else 1 (no push; ties and silence), L2L's rule."""
    left, none, right = counts.unbind(-1)
    action = torch.ones(left.shape, dtype=torch.int64)
    action = torch.where((left > none) & (left > right), 0, action)
    return torch.where((right > none) & (right > left), 2, action)


class _LIFLayer:
    """A layer of ``lif_step`` neurons (constants in ``LIF``), state v from rest."""

    def __init__(self, net: MountainCarSNN, shape: tuple[int, ...]):
        self.dt = net.dt
        self.v = torch.zeros(shape, dtype=_DTYPE)

    def step(self, w_ex: Tensor, w_in: Tensor) -> Tensor:
        i = (w_ex + w_in) / self.dt  # charge w delivered within one step
        s, self.v, _ = lif_step(self.v, i, dt=self.dt, r=LIF["tau"], reset="hard", **LIF)
        return s


class _AlphaLayer:
    """A layer of ``iaf_psc_alpha`` neurons with NEST's defaults, from rest."""

    def __init__(self, net: MountainCarSNN, shape: tuple[int, ...]):
        self.params = AlphaParams()
        self.prop = alpha_propagators(self.params, net.dt)
        self.state = alpha_state(shape, dtype=_DTYPE)

    def step(self, w_ex: Tensor, w_in: Tensor) -> Tensor:
        s, self.state = iaf_psc_alpha_step(self.state, w_ex, w_in, self.prop, self.params)
        return s.to(_DTYPE)


def _layer(net: MountainCarSNN, shape: tuple[int, ...]):
    return (_LIFLayer if net.neuron == "lif" else _AlphaLayer)(net, shape)
