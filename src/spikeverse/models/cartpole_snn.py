"""The CartPole spiking network of Hasegan et al. 2022 (seed 002 sec. 2.3), shared by the
evolution strategy (``evo.es``) and reward-modulated STDP (``rl.rstdp``), and a batch of CartPole
environments to score many networks at once.

Network, for one environment step (one window of ``window`` = 20 steps of dt = 1 ms):
- input: each of the 4 observations (cart position, cart velocity, pole angle, pole angular
  velocity) is population-coded by ``n_per_var`` = 20 Gaussian receptive fields
  (``snn.encoders.gaussian_code``, centres evenly spaced over [LOW, HIGH], width = the centre
  spacing; values outside are clipped to the edge): bounds x +-2.4 (the env's limit), x_dot +-2,
  theta +-0.2095 rad (12 degrees, the env's limit), theta_dot +-2 rad/s. Field activation r in
  [0, 1] drives an input neuron that fires regularly at r * ``input_rate`` (500 Hz: at most 10
  spikes per window): it spikes in step t = 1..T iff floor(t p) > floor((t - 1) p) with
  p = r * input_rate * dt / 1000 (an integrate-and-fire accumulator started at 0 with threshold
  1). The input is deterministic, so the policy is too.
- hidden: ``hidden`` LIF neurons, all-to-all from the 80 inputs; motor: two populations of
  ``motor`` LIF neurons (push left, push right), all-to-all from the hidden layer. LIF neurons
  are ``snn.neurons.lif_step`` (tau 10 ms, v_rest = v_reset = 0, v_th 1, hard reset, no
  refractory period, unit capacitance so R = tau); a spike over a synapse of weight w delivers
  the charge w, raising v by w (tau/dt)(1 - e^{-dt/tau}) = 0.95 w. Spikes reach the next layer in
  the step they are emitted in. Weights are signed (no biases); layouts are [post, pre], as in
  ``snn.plasticity``.
- every window starts from rest; action = the motor population with more spikes; a tie (silence
  included) is "left" (action 0), the first maximum, as ``argmax`` of
  :meth:`SNNPolicy.q_values` (the two populations' spike counts) picks it.

Genome: the flat float64 vector [W_ih (hidden x 80, row-major), W_hm (2 motor x hidden)],
80 x 32 + 20 x 32 = 3,200 genes by default. Weights are rounded to multiples of 2^-24 when they
enter the network (:func:`quantize`): every synaptic sum is then exact in float64, so a network's
spikes do not depend on the order BLAS adds them in, that is on how a population is batched or
split between workers.

Speed: a population is simulated as one batch, each row with its own weights (``torch.bmm``)
and its own CartPole (:class:`CartPoleBatch`, gymnasium's CartPole-v1 dynamics in numpy); the
input->hidden and hidden->motor currents of a whole window are one ``bmm`` each. An ES
generation (32 individuals x 4 episodes + 20 for the mean, up to 500 steps) took 0.93 s on
2 workers for seed 0 (33 generations in 30.7 s, benchmarks/results/cartpole_es_rstdp_tuning_seeds.json;
the untuned seeds' wall times on 1 worker are in benchmarks/results/cartpole_es_rstdp.json).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import Tensor

from spikeverse.envs.batched_cartpole import CartPoleBatch, episode_starts
from spikeverse.errors import SpikeverseError, require_all
from spikeverse.io.checkpoint import load_checkpoint, save_checkpoint
from spikeverse.models.genome import genome_matrix
from spikeverse.runtime import derive_seed, quantize, single_thread
from spikeverse.snn.encoders import gaussian_code, regular_spikes
from spikeverse.snn.neurons import lif_step

ENV_ID = "CartPole-v1"
KIND = "cartpole_snn"
LOW = (-2.4, -2.0, -0.2095, -2.0)  # cart position, cart velocity, pole angle, pole angular velocity
HIGH = (2.4, 2.0, 0.2095, 2.0)
ACTIONS = ("left", "right")
MAX_STEPS = 500  # CartPole-v1's time limit
_DTYPE = torch.float64


@dataclass(frozen=True)
class CartPoleSNN:
    """The network's sizes and constants; ``init_std`` is the standard deviation of initial weights."""

    n_per_var: int = 20
    hidden: int = 32
    motor: int = 10  # neurons per motor population
    window: int = 20  # simulation steps per environment step
    dt: float = 1.0  # ms
    tau: float = 10.0  # ms
    v_th: float = 1.0
    input_rate: float = 500.0  # Hz at a receptive field's centre
    init_std: float = 0.5

    def __post_init__(self):
        checks = [(self.n_per_var >= 2, f"n_per_var must be >= 2, got {self.n_per_var}"),
                  (self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}"),
                  (self.motor >= 1, f"motor must be >= 1, got {self.motor}"),
                  (self.window >= 1, f"window must be >= 1 step, got {self.window}"),
                  (self.dt > 0 and self.tau > 0 and self.v_th > 0, "dt, tau and v_th must be > 0"),
                  (0 < self.input_rate * self.dt / 1000 <= 1,
                   f"input_rate must be in (0, 1000/dt] Hz, got {self.input_rate}"),
                  (self.init_std >= 0, f"init_std must be >= 0, got {self.init_std}")]
        require_all(checks)

    # --- layout ---------------------------------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        return 4 * self.n_per_var

    @property
    def input_per_step(self) -> float:
        """Spikes per step of an input neuron at a receptive field's centre, input_rate dt / 1000."""
        return self.input_rate * self.dt / 1000.0

    @property
    def n_motor(self) -> int:
        return 2 * self.motor

    @property
    def shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """[post, pre] of input->hidden and hidden->motor."""
        return (self.hidden, self.n_inputs), (self.n_motor, self.hidden)

    @property
    def n_params(self) -> int:
        return sum(a * b for a, b in self.shapes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CartPoleSNN":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def unpack(self, genomes) -> tuple[Tensor, Tensor]:
        """Genomes [B, P] (or [P]) -> quantized weights W_ih [B, hidden, 80], W_hm [B, 2 motor, hidden]."""
        g = genome_matrix(genomes, self.n_params)
        (h, i), (m, _) = self.shapes
        g = quantize(g)
        return g[:, : h * i].reshape(-1, h, i), g[:, h * i:].reshape(-1, m, h)

    def pack(self, w_ih: Tensor, w_hm: Tensor) -> np.ndarray:
        """The inverse of :meth:`unpack`: weights [B, post, pre] (or [post, pre]) -> genomes [B, P]."""
        if w_ih.ndim == 2:
            w_ih, w_hm = w_ih.unsqueeze(0), w_hm.unsqueeze(0)
        return torch.cat([w_ih.reshape(w_ih.shape[0], -1), w_hm.reshape(w_hm.shape[0], -1)], 1).to(_DTYPE).numpy()

    def initial_genome(self, rng: np.random.Generator) -> np.ndarray:
        """One genome with weights drawn from N(0, init_std^2)."""
        return rng.normal(0.0, self.init_std, size=self.n_params)

    # --- one window ----------------------------------------------------------------------------

    def input_spikes(self, obs) -> Tensor:
        """Observations [B, 4] -> deterministic input spikes [B, T, 80] (see the module docstring)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).to(_DTYPE)
        if x.ndim != 2 or x.shape[1] != 4:
            raise SpikeverseError(f"CartPole observations are [B, 4], got shape {tuple(x.shape)}")
        p = gaussian_code(x, self.n_per_var, LOW, HIGH) * self.input_per_step  # [B, 80]
        return regular_spikes(p, self.window).movedim(0, 1)

    def _lif(self, current: Tensor) -> Tensor:
        """LIF neurons from rest under input charges [B, T, N] per step -> spikes [B, T, N]: the
        arithmetic of ``lif_step`` (u = v e^{-dt/tau} + R (q/dt)(1 - e^{-dt/tau}), s = [u >= v_th],
        hard reset to 0; R = tau, v_rest = 0) done in place, which gives the same bits (tested)."""
        d = math.exp(-self.dt / self.tau)
        drive = (current / self.dt * self.tau) * (1.0 - d)  # R I (1 - d), for every step at once
        out = torch.empty_like(current)
        v = torch.zeros(current.shape[0], current.shape[2], dtype=current.dtype)
        fired = torch.empty(v.shape, dtype=torch.bool)
        for k in range(current.shape[1]):
            v.mul_(d).add_(drive[:, k])
            torch.ge(v, self.v_th, out=fired)
            out[:, k] = fired
            v.masked_fill_(fired, 0.0)
        return out

    def _lif_reference(self, current: Tensor) -> Tensor:
        """:meth:`_lif` by ``snn.neurons.lif_step`` itself (for tests)."""
        v = torch.zeros(current.shape[0], current.shape[2], dtype=current.dtype)
        i = current / self.dt
        out = torch.empty_like(current)
        for k in range(current.shape[1]):
            out[:, k], v, _ = lif_step(v, i[:, k], tau=self.tau, dt=self.dt, r=self.tau, v_th=self.v_th)
        return out

    def simulate(self, obs, w_ih: Tensor, w_hm: Tensor, motor_noise: Tensor | None = None) -> dict[str, Tensor]:
        """One window for observations [B, 4] with weights [B, post, pre] (or one [post, pre] for
        all rows). ``motor_noise`` [B, T, 2 motor]: extra charge into the motor neurons
        (exploration). Returns the spikes {"input" [B, T, 80], "hidden" [B, T, hidden],
        "motor" [B, T, 2 motor]} and "counts" [B, 2], the spikes of each motor population.
        Runs on one torch thread (:func:`single_thread`)."""
        with single_thread():
            s_in = self.input_spikes(obs)
            s_h = self._lif(_synapses(s_in, w_ih))
            i_m = _synapses(s_h, w_hm)
            if motor_noise is not None:
                i_m = i_m + motor_noise
            s_m = self._lif(i_m)
        counts = s_m.sum(1).reshape(s_m.shape[0], 2, self.motor).sum(-1)
        return {"input": s_in, "hidden": s_h, "motor": s_m, "counts": counts}

    def counts(self, obs, w_ih: Tensor, w_hm: Tensor) -> Tensor:
        """Spikes of the left and right motor populations [B, 2] in one window."""
        return self.simulate(obs, w_ih, w_hm)["counts"]

    # --- episodes ------------------------------------------------------------------------------

    @single_thread()
    def play(self, genomes, starts, max_steps: int = MAX_STEPS) -> np.ndarray:
        """One CartPole episode per row: genomes [R, P], initial states starts [R, 4] -> steps
        survived [R] (= the episode's return, at most ``max_steps``). All rows run as one batch;
        finished episodes leave it. Runs on one torch thread (:func:`single_thread`)."""
        starts = np.asarray(starts, dtype=np.float64).reshape(-1, 4)
        w_ih, w_hm = self.unpack(genomes)
        if w_ih.shape[0] != len(starts):
            raise SpikeverseError(f"{w_ih.shape[0]} genomes need as many starts, got {len(starts)}")
        env = CartPoleBatch(starts)
        length = np.zeros(len(starts), dtype=np.int64)
        for _ in range(max_steps):
            live = np.flatnonzero(~env.done)
            if live.size == 0:
                break
            if live.size < len(env.done):  # simulate only the running episodes
                idx = torch.from_numpy(live)
                counts = self.counts(env.obs()[live], w_ih[idx], w_hm[idx])
            else:
                counts = self.counts(env.obs(), w_ih, w_hm)
            actions = np.zeros(len(starts), dtype=np.int64)
            actions[live] = decide(counts).numpy()
            env.step(actions)
            length[live] += 1
        return length


def _synapses(spikes: Tensor, w: Tensor) -> Tensor:
    """Charges into the post layer [B, T, post] from spikes [B, T, pre] and weights [B, post, pre]
    (one bmm) or [post, pre] (shared by all rows)."""
    if w.ndim == 2:
        return spikes @ w.T
    return torch.bmm(spikes, w.transpose(1, 2))


def decide(counts: Tensor) -> Tensor:
    """Action from the motor populations' spike counts [B, 2]: 1 (right) iff right > left, else 0
    (left; ties and silence included), the first maximum as ``argmax`` takes it."""
    return (counts[:, 1] > counts[:, 0]).to(torch.int64)


class SNNPolicy:
    """The network with one set of weights behind the :class:`~spikeverse.policy.Policy`
    interface: ``q_values`` = the motor populations' spike counts [B, 2] (float32)."""

    num_actions = 2

    def __init__(self, net: CartPoleSNN, genome):
        self.net = net
        w_ih, w_hm = net.unpack(genome)
        self.w_ih, self.w_hm = w_ih[0], w_hm[0]
        self.device = torch.device("cpu")

    @property
    def genome(self) -> np.ndarray:
        return self.net.pack(self.w_ih, self.w_hm)[0]

    def q_values(self, obs) -> Tensor:
        obs = torch.as_tensor(obs).cpu().reshape(-1, 4)
        return self.net.counts(obs.numpy(), self.w_ih, self.w_hm).to(torch.float32)

    def checkpoint(self, meta: dict, extra: dict[str, Tensor] | None = None) -> tuple[dict[str, Tensor], dict]:
        """The tensors and meta of a ``cartpole_snn`` checkpoint: tensor "weights" (the genome)
        and ``extra`` tensors; meta gets kind, env_id and the network's config."""
        tensors = {"weights": torch.from_numpy(self.genome), **(extra or {})}
        return tensors, {**meta, "kind": KIND, "env_id": ENV_ID, "network": self.net.to_dict()}

    def save(self, path, meta: dict, extra: dict[str, Tensor] | None = None) -> None:
        """Save :meth:`checkpoint` to ``path`` (atomically)."""
        save_checkpoint(path, *self.checkpoint(meta, extra))


@dataclass(frozen=True)
class CartPoleProblem:
    """The network as a problem for the optimizers of ``evo`` (their ``Problem`` interface): a
    genome's fitness is its mean episode length. A key (seed, generation, what) names the
    episodes: ``what`` an individual's index, ``episodes`` of them from
    derive_seed(seed, generation, "episodes") (every individual of a generation plays the same
    starts), or "eval" / "confirm", ``eval_episodes`` / ``confirm_episodes`` from
    derive_seed(seed, generation, what) (the ES's mean weights and their confirmation)."""

    network: CartPoleSNN
    episodes: int = 4
    eval_episodes: int = 20
    confirm_episodes: int = 100
    max_steps: int = MAX_STEPS

    @property
    def n_params(self) -> int:
        return self.network.n_params

    def initial_population(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.stack([self.network.initial_genome(rng) for _ in range(n)])

    def to_dict(self) -> dict:
        return self.network.to_dict()

    def fitness(self, genomes, keys) -> list[float]:
        """Mean episode lengths, every key's episodes in one batched simulation (:meth:`CartPoleSNN.play`)."""
        n_episodes = {"eval": self.eval_episodes, "confirm": self.confirm_episodes}
        rows, starts = [], []
        for j, (seed, generation, what) in enumerate(keys):
            purpose = what if isinstance(what, str) else "episodes"
            k = n_episodes.get(purpose, self.episodes)
            starts.append(episode_starts(np.random.default_rng(derive_seed(seed, generation, purpose)), k))
            rows.append(np.full(k, j))
        row_genome = np.concatenate(rows)
        lengths = self.network.play(np.asarray(genomes)[row_genome], np.concatenate(starts), self.max_steps)
        return [float(lengths[row_genome == j].mean()) for j in range(len(keys))]


def load_cartpole_snn(run_dir) -> tuple[SNNPolicy, dict]:
    """The policy of an ES or R-STDP CartPole run directory (or checkpoint file) and its metadata."""
    tensors, meta = load_checkpoint(run_dir, kind=KIND)
    if "weights" not in tensors or "network" not in meta:
        raise SpikeverseError(f"{run_dir}: the {KIND} checkpoint holds no weights or network config")
    try:
        net = CartPoleSNN.from_dict(meta["network"])
    except TypeError as e:
        raise SpikeverseError(f"{run_dir}: bad network config in the checkpoint ({e})") from None
    return SNNPolicy(net, tensors["weights"].numpy()), meta
