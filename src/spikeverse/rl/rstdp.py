"""Reward-modulated STDP on the CartPole SNN (Hasegan et al.'s STDP-RL, seed 002 sec. 2.3 and
eq. 2-3): the network of ``models.cartpole_snn`` learns online, one episode after another.

Synapses. Input -> hidden is fixed (random N(0, ``network.init_std``^2), from the seed); hidden ->
motor is plastic, excitatory, in [0, ``w_max``], started at U(0, 2 ``w_init``). Plasticity is
``snn.plasticity.RSTDP``: pair STDP (a+ = a- = ``a_plus``, tau 20 ms) filtered by an eligibility
trace e (tau_e = ``tau_e``), w <- clip(w + eta r e) (seed 002 eq. 2-3 with g = 1).
The rule reads a motor spike as one step after the hidden spikes of its step (see
:meth:`Learner.window_update`), so the spike pairs that drive a motor neuron are causal.

One environment step: the window (``window`` x 1 ms) is simulated with the current weights plus
exploration noise; the action is the motor population with more spikes (ties: left); during the
window the rule runs with reward 0, so that e collects the window's spike pairs
(pre = hidden, post = motor); then the environment steps, the critic gives r, and one more step
of the rule (no spikes) applies it, "targeted" as in Hasegan et al.: the synapses onto the motor
population that produced the action get r - r_bar, the other population's get 0, with r_bar a
running mean of the critic (r_bar <- r_bar + ``baseline_rate`` (r - r_bar) after each step; a
reward-prediction error, which keeps a mostly punished policy from depressing every synapse). The
STDP traces and e start from zero in each episode; tau_e = 5 ms keeps the credit on the window
that chose the action (with 50 ms, the earlier windows' pairs, of other actions, drowned it).

Critic (ours, in the spirit of Hasegan et al.'s "reward when the pole moves toward upright"):
with phi = theta + h theta_dot the pole angle predicted h = ``critic_horizon`` (0.25 s) ahead,
r = +1 when the action reduced |phi|, -1 when it increased it, and r = -``failure_punishment``
when the episode fails (the pole falls or the cart leaves the track; not at the time limit).
Under a random policy this critic agrees with the controller "push toward the side of phi"
(which itself balances the pole) on most steps, the angle alone (h = 0) far less often (no
results file keeps these shares; R-STDP with each critic: benchmarks/results/cartpole_es_rstdp.md).

Exploration: every motor neuron receives background noise spikes (Bernoulli per step at
``noise_rate`` Hz, each a charge of ``noise_weight``, enough to fire a neuron at rest), the rate
annealed linearly to 0 over ``noise_decay_episodes`` episodes; greedy play (evaluation) has none.

Model selection: every ``eval_every`` episodes the weights play ``eval_episodes`` noise-free
episodes (from derive_seed(seed, episode, "eval")); the best weights (latest on ties) are the
checkpoint's "weights", what ``spikeverse evaluate`` plays, as the DQN keeps its best weights.

Defaults (ours; seed 002 gives no numbers): 200 episodes, eta 0.01, a+ = a- = 0.01, w in
[0, 0.15] from U(0, 0.06), 64 hidden neurons, noise 50 Hz annealed over 200 episodes, failure
punishment 1, baseline rate 0.01; tuned on seed 0 against tau_e 10-50 ms, eta 0.03-1, a failure
punishment of 10 and an extra opposite reward on the other population, all worse (seed 0 with the
defaults: 496.5 over 100 evaluation episodes, benchmarks/results/cartpole_es_rstdp_tuning_seeds.json).
On the untuned seeds 100-109: 8/10 reach 475 or more over those 100 episodes, median 489.0,
lowest 413.5 (benchmarks/results/cartpole_es_rstdp.json).

Randomness: the initial weights from derive_seed(seed, 0, "init"), episode e's start state and
noise from derive_seed(seed, e, "reset"/"noise"): a resumed run repeats an uninterrupted one.

Run directory: config.yaml; metrics.csv (one row per episode: episode, step = cumulative env
steps, length, reward = the critic's sum, noise_rate, w_mean, wall_s); evals.csv (step, episode,
mean, std); checkpoint.safetensors (kind "cartpole_snn", method "rstdp": the best weights, the
current weights, r_bar, counters), written every ``checkpoint_every`` episodes and at the end.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from spikeverse.envs.batched_cartpole import CartPoleBatch, episode_starts
from spikeverse.errors import SpikeverseError, require_all
from spikeverse.io.rundir import EVALS, METRICS, Best, RunDir
from spikeverse.models.cartpole_snn import ENV_ID, KIND, MAX_STEPS, CartPoleSNN, SNNPolicy, decide
from spikeverse.progress import Progress
from spikeverse.runtime import derive_seed, quantize, single_thread
from spikeverse.snn.plasticity import RSTDP, PairSTDP, RSTDPState, Traces

METRIC_FIELDS = ("episode", "step", "length", "reward", "noise_rate", "w_mean", "wall_s")
EVAL_FIELDS = ("step", "episode", "mean", "std")


@dataclass(frozen=True)
class RSTDPConfig:
    """R-STDP on the CartPole SNN; see the module docstring for each option."""

    episodes: int = 200
    seed: int = 0
    eta: float = 0.01
    a_plus: float = 0.01
    tau_stdp: float = 20.0  # ms
    tau_e: float = 5.0  # ms
    w_max: float = 0.15
    w_init: float = 0.03
    critic_horizon: float = 0.25  # s
    failure_punishment: float = 1.0
    baseline_rate: float = 0.01  # per step, of the reward baseline r_bar (0: none)
    noise_rate: float = 50.0  # Hz per motor neuron
    noise_weight: float = 1.1
    noise_decay_episodes: int = 200
    eval_every: int = 25
    eval_episodes: int = 10
    checkpoint_every: int = 10
    max_steps: int = MAX_STEPS
    network: CartPoleSNN = field(default_factory=lambda: CartPoleSNN(hidden=64))

    def __post_init__(self):
        if isinstance(self.network, dict):
            object.__setattr__(self, "network", CartPoleSNN.from_dict(self.network))
        checks = [
            (self.episodes >= 1, f"episodes (--steps) must be >= 1, got {self.episodes}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.eta > 0, f"eta (--lr) must be > 0, got {self.eta}"),
            (self.a_plus > 0 and self.tau_stdp > 0 and self.tau_e > 0, "a_plus, tau_stdp and tau_e must be > 0"),
            (self.w_max > 0 and 0 <= self.w_init <= self.w_max / 2, "need w_max > 0 and 0 <= w_init <= w_max / 2"),
            (self.critic_horizon >= 0 and self.failure_punishment >= 0,
             "critic_horizon and failure_punishment must be >= 0"),
            (0 <= self.noise_rate * self.network.dt / 1000 <= 1, f"noise_rate must be in [0, 1000/dt] Hz, got {self.noise_rate}"),
            (self.noise_weight >= 0 and self.noise_decay_episodes >= 0, "noise_weight and noise_decay_episodes must be >= 0"),
            (self.eval_every >= 0 and self.eval_episodes >= 1, "eval_every must be >= 0 and eval_episodes >= 1"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (1 <= self.max_steps <= MAX_STEPS, f"max_steps must be in [1, {MAX_STEPS}], got {self.max_steps}"),
        ]
        require_all(checks)

    @classmethod
    def for_env(cls, env_id: str, **overrides) -> "RSTDPConfig":
        """The config for ``env_id`` (CartPole-v1 only); overrides with value None are ignored."""
        if env_id != ENV_ID:
            raise SpikeverseError(f"--agent rstdp plays {ENV_ID} only, got '{env_id}'")
        return cls(**{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    def rule(self) -> RSTDP:
        """The plasticity rule of the hidden -> motor synapses."""
        stdp = PairSTDP(a_plus=self.a_plus, a_minus=self.a_plus, tau_plus=self.tau_stdp, tau_minus=self.tau_stdp,
                        dt=self.network.dt, wmin=0.0, wmax=self.w_max)
        return RSTDP(stdp, eta=self.eta, tau_e=self.tau_e)

    def noise_at(self, episode: int) -> float:
        """The exploration noise rate (Hz) of ``episode`` (1-based), linear to 0."""
        if self.noise_decay_episodes == 0:
            return 0.0
        return self.noise_rate * max(0.0, 1.0 - (episode - 1) / self.noise_decay_episodes)


def critic(obs: np.ndarray, next_obs: np.ndarray, failed: bool, cfg: RSTDPConfig) -> float:
    """+1 if |theta + h theta_dot| decreased, -1 if not; -failure_punishment on failure."""
    if failed:
        return -cfg.failure_punishment
    h = cfg.critic_horizon
    before, after = abs(obs[2] + h * obs[3]), abs(next_obs[2] + h * next_obs[3])
    return 1.0 if after < before else -1.0


def initial_weights(cfg: RSTDPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed input -> hidden N(0, init_std^2) and plastic hidden -> motor U(0, 2 w_init)."""
    net = cfg.network
    rng = np.random.default_rng(derive_seed(cfg.seed, 0, "init"))
    (h, i), (m, _) = net.shapes
    w_ih = torch.from_numpy(rng.normal(0.0, net.init_std, size=(h, i)))
    w_hm = torch.from_numpy(rng.uniform(0.0, 2 * cfg.w_init, size=(m, h)))
    return quantize(w_ih), w_hm


@functools.lru_cache(maxsize=16)
def _decay_matrix(steps: int, d: float, dtype) -> torch.Tensor:
    """[T, T] with entry (n, m) = d^(n - m) for m < n, else 0 (cached: the same few for every
    window of a run; read only)."""
    n = torch.arange(steps, dtype=dtype)
    diff = n[:, None] - n[None, :]
    return torch.where(diff > 0, d ** diff, torch.zeros((), dtype=dtype))


def window_eligibility(rule: RSTDP, state: RSTDPState, pre: torch.Tensor, post: torch.Tensor) -> RSTDPState:
    """T steps of ``rule.step(w, pre[n], post[n], reward=0, state)`` in closed form (tested
    against the loop). With the traces' decay per step d+ = e^{-dt/tau+}, d- = e^{-dt/tau-} and
    the eligibility's d_e = e^{-dt/tau_e}, the traces each step reads (before its own spikes) are
    X_pre[n] = d+^n P_0 + sum_{m<n} d+^(n-m) pre[m] (likewise X_post), and
    e_T = d_e^T e_0 + sum_n d_e^(T-n) (a+ post[n] X_pre[n]^T - a- X_post[n] pre[n]^T)
    (n = 1..T), two [post, T] @ [T, pre] products. The weights are unchanged (reward 0)."""
    stdp = rule.stdp
    steps, dtype = pre.shape[0], pre.dtype
    d_pre, d_post = math.exp(-stdp.dt / stdp.tau_plus), math.exp(-stdp.dt / stdp.tau_minus)
    d_e = math.exp(-stdp.dt / rule.tau_e)
    n = torch.arange(1, steps + 1, dtype=dtype)
    x_pre = _decay_matrix(steps, d_pre, dtype) @ pre + (d_pre ** n)[:, None] * state.traces.pre
    x_post = _decay_matrix(steps, d_post, dtype) @ post + (d_post ** n)[:, None] * state.traces.post
    w_e = (d_e ** (steps - n))[:, None]
    e = (d_e ** steps) * state.eligibility + stdp.a_plus * (w_e * post).T @ x_pre - stdp.a_minus * (w_e * x_post).T @ pre
    traces = Traces(x_pre[-1] + pre[-1], x_post[-1] + post[-1])
    return RSTDPState(traces, e)


class Learner:
    """The online learner: weights, the rule, one episode at a time."""

    def __init__(self, cfg: RSTDPConfig, w_ih: torch.Tensor, w_hm: torch.Tensor):
        self.cfg, self.net, self.rule = cfg, cfg.network, cfg.rule()
        self.w_ih, self.w_hm = w_ih, w_hm
        self.baseline = 0.0

    def window_update(self, state: RSTDPState, hidden: torch.Tensor, motor: torch.Tensor) -> RSTDPState:
        """The rule over one window's spikes (pre = hidden [T, hidden], post = motor [T, 2 motor])
        with reward 0 (:func:`window_eligibility`): the weights do not change, the eligibility
        collects the pairs. A motor spike is stamped one step after the hidden spikes of its step
        (they arrive at the start of the step, it fires at its end; NEST stamps a spike at the end
        of its step too), so a hidden spike that makes a motor neuron fire is a causal pair,
        dt = +1 ms; stamped in the same step they would not pair at all (dt = 0), and then only
        half of the active pairs get a positive eligibility instead of about 80%."""
        zero_h, zero_m = hidden.new_zeros(1, hidden.shape[1]), motor.new_zeros(1, motor.shape[1])
        return window_eligibility(self.rule, state, torch.cat([hidden, zero_h]), torch.cat([zero_m, motor]))

    def reward_update(self, state, action: int, reward: float):
        """One step of the rule without spikes, the reward ``reward`` on the synapses onto the
        population of ``action`` (targeted), 0 on the others: w <- clip(w + eta r e)."""
        r = torch.zeros(self.net.n_motor, 1, dtype=self.w_hm.dtype)
        r[action * self.net.motor:(action + 1) * self.net.motor] = reward
        zeros_h = torch.zeros(self.net.hidden, dtype=self.w_hm.dtype)
        zeros_m = torch.zeros(self.net.n_motor, dtype=self.w_hm.dtype)
        self.w_hm, state = self.rule.step(self.w_hm, zeros_h, zeros_m, r, state)
        return state

    def episode(self, episode: int) -> dict:
        """Play and learn one episode (1-based index); returns its length and critic sum."""
        cfg, net = self.cfg, self.net
        env = CartPoleBatch(episode_starts(np.random.default_rng(derive_seed(cfg.seed, episode, "reset")), 1))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, episode, "noise"))
        p_noise = cfg.noise_at(episode) * net.dt / 1000.0
        state = self.rule.init_state(self.w_hm)
        length, total = 0, 0.0
        while not env.done[0] and length < cfg.max_steps:
            obs = env.obs()
            noise = None
            if p_noise > 0:
                noise = (torch.rand(1, net.window, net.n_motor, generator=gen, dtype=torch.float64) < p_noise) * cfg.noise_weight
            sim = net.simulate(obs, self.w_ih, quantize(self.w_hm), noise)
            action = int(decide(sim["counts"])[0])
            state = self.window_update(state, sim["hidden"][0], sim["motor"][0])
            env.step(np.array([action]))
            length += 1
            r = critic(obs[0], env.obs()[0], bool(env.done[0]), cfg)
            total += r
            state = self.reward_update(state, action, r - self.baseline)
            self.baseline += self.cfg.baseline_rate * (r - self.baseline)
        return {"length": length, "reward": total}

    def genome(self) -> np.ndarray:
        return self.net.pack(self.w_ih, self.w_hm)[0]

    def evaluate(self, episode: int) -> np.ndarray:
        """Noise-free episode lengths of the current weights (model selection)."""
        starts = episode_starts(np.random.default_rng(derive_seed(self.cfg.seed, episode, "eval")), self.cfg.eval_episodes)
        return self.net.play(np.repeat(self.genome()[None], len(starts), 0), starts, self.cfg.max_steps)


def _config_dict(cfg: RSTDPConfig) -> dict:
    return {"agent": "rstdp", "env_id": ENV_ID, **cfg.to_dict()}


@dataclass
class _Progress:
    """Where a run stands: finished episodes, environment steps, wall seconds, the last 100
    episode lengths and the best weights (model selection)."""

    episode: int = 0
    steps: int = 0
    wall: float = 0.0
    lengths: list = field(default_factory=list)
    best: Best = field(default_factory=Best)


def _restore(learner: Learner, initial: np.ndarray, saved) -> _Progress:
    """The learner's weights and the counters of a checkpoint, or a fresh start (``saved`` None)."""
    if saved is None:
        return _Progress(best=Best(-np.inf, initial, None))
    tensors, meta = saved
    learner.w_ih, learner.w_hm = tensors["rstdp.w_ih"].clone(), tensors["rstdp.w_hm"].clone()
    learner.baseline = float(meta["baseline"])
    return _Progress(int(meta["episode"]), int(meta["step"]), float(meta["wall_s"]), list(meta["lengths"]),
                     Best(float(meta["best_eval"]), tensors["weights"].numpy().copy(), meta["best_eval_episode"]))


def train_rstdp(cfg: RSTDPConfig, run_dir: str | Path, *, resume: bool = True, progress: bool | None = None) -> dict:
    """Train the CartPole SNN by R-STDP into ``run_dir`` (resuming the same run from its last
    checkpoint; a larger ``episodes`` continues it). Returns {"run_dir", "env", "agent",
    "episodes", "steps", "best_eval", "best_eval_episode", "last_length_mean" (last 100 episodes),
    "wall_s", "resumed_from"}."""
    config = _config_dict(cfg)
    run = RunDir(run_dir, config, accepts=("rstdp",), label="R-STDP", kind=KIND, method="rstdp",
                 resumable=("episodes",), resume=resume)
    learner = Learner(cfg, *initial_weights(cfg))
    p = _restore(learner, learner.genome(), run.saved)
    resumed_from = p.episode or None
    run.begin()
    metrics, evals = run.metrics(METRICS, METRIC_FIELDS, step=p.steps), run.metrics(EVALS, EVAL_FIELDS, step=p.steps)

    def save() -> None:
        best = p.best
        meta = {"method": "rstdp", "config": config, "episode": p.episode, "step": p.steps, "wall_s": p.wall,
                "baseline": learner.baseline,
                "lengths": p.lengths[-100:], "best_eval": best.score, "best_eval_episode": best.at,
                "weights": f"best weights (episode {best.at}, {best.score:g} over {cfg.eval_episodes} "
                           f"noise-free episodes)" if best.at else "initial weights"}
        SNNPolicy(cfg.network, best.value).save(run.checkpoint, meta,
                                                {"rstdp.w_ih": learner.w_ih, "rstdp.w_hm": learner.w_hm})

    log = Progress(cfg.episodes, f"train rstdp {ENV_ID}", unit="episode", initial=p.episode, enabled=progress)
    try:
        while p.episode < cfg.episodes:
            _episode(learner, p, metrics, evals)
            if p.episode % cfg.checkpoint_every == 0 or p.episode == cfg.episodes:
                if not cfg.eval_every:
                    p.best.value = learner.genome()
                save()
            log.update(1, length=p.lengths[-1], mean100=round(float(np.mean(p.lengths)), 1), best_eval=p.best.score)
    finally:
        log.close()
        metrics.close()
        evals.close()
    return {"run_dir": str(run.path), "env": ENV_ID, "agent": "rstdp", "episodes": p.episode, "steps": p.steps,
            "best_eval": None if p.best.at is None else p.best.score, "best_eval_episode": p.best.at,
            "last_length_mean": float(np.mean(p.lengths)) if p.lengths else None, "wall_s": round(p.wall, 2),
            "resumed_from": resumed_from}


def _episode(learner: Learner, p: _Progress, metrics, evals) -> None:
    """Play and learn the next episode; evaluate the weights when due (keeping the best, latest
    on ties); log it."""
    cfg = learner.cfg
    t0 = time.perf_counter()
    p.episode += 1
    with single_thread():
        out = learner.episode(p.episode)
    p.steps += out["length"]
    p.lengths = (p.lengths + [out["length"]])[-100:]
    if cfg.eval_every and (p.episode % cfg.eval_every == 0 or p.episode == cfg.episodes):
        scores = learner.evaluate(p.episode)
        evals.write(dict(step=p.steps, episode=p.episode, mean=float(scores.mean()), std=float(scores.std())))
        p.best.offer(float(scores.mean()), learner.genome, p.episode)
    p.wall += time.perf_counter() - t0
    metrics.write(dict(episode=p.episode, step=p.steps, length=out["length"], reward=out["reward"],
                       noise_rate=round(cfg.noise_at(p.episode), 4), w_mean=round(float(learner.w_hm.mean()), 6),
                       wall_s=round(p.wall, 3)))
