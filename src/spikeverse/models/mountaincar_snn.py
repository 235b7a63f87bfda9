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
- every window starts from rest; action = the output neuron with the most spikes; ``tie``
  (:func:`decide`): "right" (default) breaks ties towards the highest index, so a tie that
  involves "push right", and silence, push right; "left" towards the lowest; "none" is L2L's
  rule (left or right only with strictly more spikes than both others, else no push).

Genome: the flat vector of all weights, input -> hidden ([2 bins, hidden], row-major: the
weight from input i to hidden j is gene i * hidden + j; position inputs first) then hidden ->
output ([hidden, 3]): 60 x 5 + 5 x 3 = 315 genes by default, L2L's layout. No biases or
thresholds: seed 002 and L2L evolve weights only.

Fitness (seed 002 eq. 15): f = max_t p_t over the positions after each of the first T = 110
steps of ``MountainCar-v0``, the episode ending earlier when the env ends it (goal p >= 0.5; the
200-step limit never comes first). The start state is ``reset(seed=...)`` (:meth:`reset_seed`):
``start="fixed"`` (default) one state per run, every generation scored on it (seed 002 Fig. 16
drives the car from one start, -0.5); ``"generation"`` one per generation (L2L:
``env.reset(seed=generation)``); ``"individual"`` one per evaluation. With ``episodes`` K > 1
(ours) an evaluation plays K such start states and its fitness is the mean of their f: a network
scored on one start state often reaches the goal from few others.

Choices of ours, for the target "3/3 seeds reach 0.5 within 20 generations" that seed 002
reports (about generation 18) and L2L does not (about 160). Measured with the GA of ``evo.ga``
(population 32, 20 generations), seeds 0-23, each changing one default
(``python benchmarks/evolve_mountaincar.py --study --study-seeds 24``; the defaults: 20/24). These
seeds chose the defaults; on seeds 100-149, which neither the tuning (seeds 0-2) nor the study used,
the defaults solve 41/50 within 20 generations, median generation 7
(benchmarks/results/evolve_mountaincar_untuned.json). The choices, on seeds 0-23:
- ``init="linear"``: seed 002 and L2L draw every weight independently (``init="normal"``).
  With one-hot bins that makes each network a random table of actions with no order over the
  state: 0/24 seeds with N(0, 2^2) (in earlier trials also with 10 hidden neurons, input rates
  of 250-1000 Hz, per-gene mutation rates 0.02-0.2, elitism or a fixed start). The linear start
  makes the weights from the 30 bins of one variable to a hidden neuron s c_i, c_i the bin centre
  on (-1, 1), s ~ N(0, init_sigma^2): an initial hidden neuron responds to position and velocity
  as graded quantities, as if it saw the continuous state (a random half-plane of the state
  space), and every weight remains a free gene. ``init_sigma`` = 4: hidden neurons switch
  sharply across the state.
- ``tie="right"``: L2L's rule (``"none"``) 8/24, ``"left"`` 16/24.
- ``start="fixed"``: one start per generation (L2L) 18/24, one per individual 17/24.

Speed and exactness: a window from rest with deterministic input depends on the state only
through its (position bin, velocity bin), so :meth:`response_table` simulates the 30 x 30
windows of every individual at once (batched in torch) and the rollout looks the actions up;
this is exactly simulating each visited state's window (:meth:`window_counts`; tested). Only
elementwise tensor operations are used (no matrix products, whose summation order may depend on
the batch), so an individual's fitness does not depend on which others share its batch: any
number of workers gives the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from spikeverse.errors import SpikeverseError, require_all
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.models.genome import genome_matrix
from spikeverse.runtime import derive_seed
from spikeverse.snn.alpha import AlphaParams, alpha_propagators, alpha_state, iaf_psc_alpha_step
from spikeverse.snn.encoders import bin_code
from spikeverse.snn.neurons import lif_step, time_grid

ENV_ID = "MountainCar-v0"
KIND = "mountaincar_snn"  # the checkpoint kind of an evolved Mountain Car network (before issue 12: "evo",
#                          io.checkpoint.LEGACY_KINDS)
LOW = (-1.2, -0.07)  # position, velocity (the env's observation bounds)
HIGH = (0.6, 0.07)
ACTIONS = ("left", "none", "right")
NEURONS = ("lif", "iaf_psc_alpha")
INITS = ("linear", "normal")
STARTS = ("fixed", "generation", "individual")
TIES = ("right", "left", "none")
ALPHA_WEIGHT_PA = 1000.0  # pA per unit of genome
LIF = dict(tau=10.0, v_rest=0.0, v_th=1.0, v_reset=0.0)  # ms, dimensionless; R = tau (unit capacitance)
_DTYPE = torch.float64


@dataclass(frozen=True)
class MountainCarSNN:
    """The network, its simulation, its initial population and the episode that scores it."""

    hidden: int = 5
    neuron: str = "lif"
    bins: int = 30
    window_ms: float = 20.0
    dt: float | None = None  # ms; None: 1 (lif), 0.1 (iaf_psc_alpha, NEST's default resolution)
    input_rate: float = 1000.0  # Hz, of the active input neurons
    steps: int = 110  # environment steps per episode (seed 002's T)
    init: str = "linear"  # initial population: linear (graded in the state) or normal (i.i.d.)
    init_sigma: float = 4.0
    start: str = "fixed"  # start state of an evaluation: fixed, generation or individual
    episodes: int = 1  # episodes per evaluation (start states); fitness = the mean of their max positions
    tie: str = "right"  # action on tied spike counts: right, left or none (L2L)

    def __post_init__(self):
        if self.dt is None:
            object.__setattr__(self, "dt", 1.0 if self.neuron == "lif" else 0.1)
        checks = [(self.neuron in NEURONS, f"unknown neuron model '{self.neuron}' (choose {' or '.join(NEURONS)})"),
                  (self.init in INITS, f"unknown initialisation '{self.init}' (choose {' or '.join(INITS)})"),
                  (self.start in STARTS, f"unknown start mode '{self.start}' (choose {', '.join(STARTS)})"),
                  (self.tie in TIES, f"unknown tie rule '{self.tie}' (choose {', '.join(TIES)})"),
                  (self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}"),
                  (self.bins >= 2, f"bins must be >= 2, got {self.bins}"),
                  (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
                  (self.episodes >= 1, f"--episodes must be >= 1, got {self.episodes}"),
                  (self.init_sigma > 0, f"init_sigma must be > 0, got {self.init_sigma}"),
                  (self.input_rate > 0, f"input_rate must be > 0 Hz, got {self.input_rate}")]
        require_all(checks)
        time_grid(self.window_ms, self.dt)
        if self.input_period_steps < 1:
            raise SpikeverseError(f"input_rate {self.input_rate} Hz exceeds one spike per step of {self.dt} ms")

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
        g = genome_matrix(genomes, self.n_params)
        if self.neuron == "iaf_psc_alpha":
            g = g * ALPHA_WEIGHT_PA
        n_in = self.n_inputs * self.hidden
        return (g[:, :n_in].reshape(-1, self.n_inputs, self.hidden),
                g[:, n_in:].reshape(-1, self.hidden, len(ACTIONS)))

    def pack(self, w_in: Tensor, w_out: Tensor) -> np.ndarray:
        """The inverse of :meth:`unpack`: weights -> genomes [B, P]."""
        g = torch.cat([w_in.reshape(w_in.shape[0], -1), w_out.reshape(w_out.shape[0], -1)], dim=1).to(_DTYPE)
        if self.neuron == "iaf_psc_alpha":
            g = g / ALPHA_WEIGHT_PA
        return g.numpy()

    def initial_population(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n genomes. ``normal``: every gene N(0, init_sigma^2). ``linear``: the weights from the
        bins of one variable to hidden neuron j are s c_i, c_i = (i + 1/2)/bins * 2 - 1 the bin
        centre on (-1, 1) and s ~ N(0, init_sigma^2) per (variable, neuron); the hidden ->
        output weights N(0, init_sigma^2)."""
        if self.init == "normal":
            return rng.normal(0.0, self.init_sigma, size=(n, self.n_params))
        c = (np.arange(self.bins) + 0.5) / self.bins * 2 - 1
        slope = rng.normal(0.0, self.init_sigma, size=(n, 2, 1, self.hidden))
        w_out = rng.normal(0.0, self.init_sigma, size=(n, self.hidden * len(ACTIONS)))
        return np.concatenate([(slope * c[:, None]).reshape(n, -1), w_out], axis=1)

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

    def _drive(self, w_in: Tensor, rows: Tensor, p: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Summed positive and negative weights onto the hidden layer of the active inputs of
        genome ``rows``: position bin ``p``, velocity bin ``v`` (index tensors broadcast together)."""
        pos, neg = w_in.clamp_min(0), w_in.clamp_max(0)
        return pos[rows, p] + pos[rows, self.bins + v], neg[rows, p] + neg[rows, self.bins + v]

    def window_counts(self, genomes, obs) -> tuple[Tensor, Tensor]:
        """Spike counts of one 20 ms window from rest for observation(s) ``obs`` ([2], one for
        all genomes, or [B, 2], one per genome): output [B, 3] and hidden [B, hidden]."""
        w_in, w_out = self.unpack(genomes)
        idx = self.state_bins(obs)
        if idx.ndim == 1:
            idx = idx.expand(w_in.shape[0], 2)
        rows = torch.arange(w_in.shape[0])
        return self._simulate(*self._drive(w_in, rows, idx[:, 0], idx[:, 1]), w_out)

    def response_table(self, genomes) -> Tensor:
        """Output spike counts of the window of every (position bin, velocity bin):
        [B, bins, bins, 3] (seed 002 Figs. 13-15 are its three [bins, bins] slices)."""
        w_in, w_out = self.unpack(genomes)
        b = torch.arange(self.bins)
        rows = torch.arange(w_in.shape[0])[:, None, None]
        ex, inh = self._drive(w_in, rows, b[None, :, None], b[None, None, :])  # [B, bins, bins, hidden]
        return self._simulate(ex, inh, w_out)[0]

    # --- episodes ----------------------------------------------------------------------------

    def rollout(self, genomes, reset_seeds, *, record: bool = False) -> dict:
        """Run episodes of at most ``steps`` steps: ``reset_seeds`` [B] one per genome, genome b
        starting from ``reset(seed=reset_seeds[b])``, or [B, K], K per genome. Returns
        {"fitness": [B] (or [B, K]) max position}; with ``record`` ([B] seeds) also "position",
        "velocity" [B, steps + 1] (the start first; NaN after the end), "action" [B, steps] (-1
        after the end) and "counts" [B, steps, 3] (output spikes)."""
        table = self.response_table(genomes)
        actions = decide(table, self.tie).numpy()
        counts = table.numpy()
        seeds = np.asarray(reset_seeds, dtype=np.int64)
        if seeds.ndim not in (1, 2) or seeds.shape[0] != actions.shape[0] or (record and seeds.ndim != 1):
            raise SpikeverseError(f"{actions.shape[0]} genomes need {actions.shape[0]} reset seeds (or rows of "
                                  f"them), got shape {seeds.shape}")
        genome_of = np.repeat(np.arange(actions.shape[0]), 1 if seeds.ndim == 1 else seeds.shape[1])
        actions, counts = actions[genome_of], counts[genome_of]
        n = len(genome_of)
        envs = [gym.make(ENV_ID) for _ in range(n)]  # gymnasium's own (200-step limit); no minatar/ale imports
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds.reshape(-1))])
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
        return {"fitness": best.reshape(seeds.shape), **(rec or {})}

    def reset_seed(self, seed: int, generation: int, index: int, episode: int = 0) -> int:
        """The env seed of an evaluation's ``episode``: ``fixed``, those of generation 1 for every
        evaluation of the run; ``generation``, one set per generation (L2L); ``individual``, one
        set per evaluation. Episode 0 of each is the one-episode evaluation's start."""
        keys = {"fixed": (seed, 1), "generation": (seed, generation)}.get(self.start, (seed, generation, index))
        return derive_seed(*keys, "reset", *((episode,) if episode else ()))

    def fitness(self, genomes, keys: Sequence[tuple[int, int, int]]) -> list[float]:
        """Seed 002 eq. 15 for each genome, ``keys`` [(seed, generation, index)] giving the start
        states (:meth:`reset_seed`); with ``episodes`` K > 1, the mean over K start states."""
        seeds = [[self.reset_seed(*k, episode=e) for e in range(self.episodes)] for k in keys]
        return [float(f) for f in self.rollout(genomes, seeds)["fitness"].mean(1)]


def decide(counts: Tensor, tie: str = "right") -> Tensor:
    """Action from output spike counts [..., 3]: the neuron with the most spikes. Ties:
    ``right`` to the highest index, ``left`` to the lowest, ``none`` L2L's rule (0 or 2 only with
    strictly more spikes than both others, else 1: ties and silence do not push)."""
    if tie == "left":
        return counts.argmax(-1)  # torch: the first maximal index
    if tie == "right":
        return len(ACTIONS) - 1 - counts.flip(-1).argmax(-1)
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


class MountainCarPolicy:
    """An evolved network behind the :class:`~spikeverse.policy.Policy` interface:
    ``q_values`` [B, 3] is one-hot on the network's decision for each observation (the most
    spikes of its 20 ms window, ties by ``tie``), so that argmax is exactly the action the GA
    scored. The decisions come from :meth:`MountainCarSNN.response_table`, simulated once."""

    num_actions = len(ACTIONS)

    def __init__(self, net: MountainCarSNN, genome):
        self.net = net
        self.genome = np.asarray(genome, dtype=np.float64).reshape(-1)
        self.actions = decide(net.response_table(self.genome[None])[0], net.tie)  # [bins, bins]
        self.device = torch.device("cpu")

    def q_values(self, obs) -> Tensor:
        idx = self.net.state_bins(torch.as_tensor(obs).cpu().reshape(-1, 2).numpy())
        return torch.nn.functional.one_hot(self.actions[idx[:, 0], idx[:, 1]], self.num_actions).to(torch.float32)


def load_mountaincar_snn(run_dir) -> tuple[MountainCarPolicy, dict]:
    """The best network of a GA run directory (or checkpoint file) and the checkpoint metadata."""
    tensors, meta = load_checkpoint(run_dir, kind=KIND)
    network = (meta.get("config") or {}).get("network")
    if meta.get("env_id") != ENV_ID or "best" not in tensors or network is None:
        raise SpikeverseError(f"{run_dir}: not a {ENV_ID} evolve checkpoint with a best network")
    try:
        net = MountainCarSNN.from_dict(network)
    except TypeError as e:
        raise SpikeverseError(f"{run_dir}: bad network config in the checkpoint ({e})") from None
    return MountainCarPolicy(net, tensors["best"].numpy()), meta
