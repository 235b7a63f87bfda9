"""The DQN training loop: vectorised collection, replay, updates, periodic evaluation,
atomic checkpoints, resume (SPEC R-RL-DQN; issue 2).

A run directory holds config.yaml, metrics.csv and checkpoint.safetensors. Rerunning into a
directory with a checkpoint resumes: step counter, episode counter, epsilon and PER-beta
schedules (both are functions of the step), online and target networks, optimiser, best
weights and RNG states are restored. The replay memory is not saved (it would be GBs for
Atari); a resumed run refills ``learning_starts`` transitions before it updates again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spikeverse.device import resolve_device
from spikeverse.envs import make_vector, obs_scale_for, real_next_obs
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_module_state, optimizer_from_flat, optimizer_to_flat, prefixed, unprefixed
from spikeverse.io.rundir import EVALS, METRICS, Best, RunDir
from spikeverse.progress import Progress
from spikeverse.rl.checkpoint import Q_KINDS, q_kind
from spikeverse.rl.config import DQNConfig, upgrade_config
from spikeverse.rl.dqn import DQNAgent, network_spec
from spikeverse.rl.env_check import check_agent_env
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.networks import QNetwork
from spikeverse.rl.nstep import NStepAccumulator
from spikeverse.rl.replay import PrioritizedReplayBuffer, ReplayBuffer
from spikeverse.rl.schedules import linear_schedule
from spikeverse.runtime import MODEL_SELECTION_SEED

EVAL_FIELDS = ["step", "mean", "std", "episodes", "wall_s"]
METRIC_FIELDS = ["step", "episode", "episode_return", "episode_length", "loss", "epsilon", "steps_per_s", "wall_s"]
# a stop candidate is confirmed on at least this many episodes: Gymnasium's CartPole-v1 counts as solved
# on the mean of 100 episodes, and a confirmation on 40 let the main job's seed 0 stop on a DQN that then
# failed some of its 20 evaluation episodes
STOP_CONFIRM_EPISODES = 100
# options that may change when a run is resumed (a longer budget, another device, ...)
RESUMABLE_CHANGES = {"total_steps", "device", "eval_interval", "eval_episodes", "checkpoint_interval", "stop_score"}


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    episodes: int
    wall_s: float
    best_score: float | None
    resumed_from: int


class _Run:
    """One call of :func:`train_dqn`: the agent, its environments and replay memory, the counters,
    the best weights, and the run directory they are saved to."""

    def __init__(self, cfg: DQNConfig, run: RunDir, device: torch.device):
        self.cfg, self.run, self.device = cfg, run, device
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.envs, self.spec, self.agent = _build(cfg, device)
        self.step, self.episodes, self.wall0 = 0, 0, 0.0  # wall0: seconds of the steps before this call
        self.best = Best()
        self.init_scales = None  # DSQN: the data-dependent initialisation's factors, once done
        if run.saved is not None:
            self._restore(*run.saved)
        self.resumed_from = self.step
        self.t0, self.step0 = time.perf_counter(), self.step

    def _restore(self, tensors: dict, meta: dict) -> None:
        agent, where = self.agent, str(self.run.checkpoint)
        load_module_state(agent.online, unprefixed("online", tensors), where)
        load_module_state(agent.target, unprefixed("target", tensors), where)
        optimizer_from_flat(agent.optimizer, unprefixed("optim", tensors), meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.step, self.episodes = meta["step"], meta["episodes"]
        self.wall0 = float(meta.get("wall_s", 0.0))
        self.init_scales = meta.get("snn_init_scales")
        if meta.get("best_score") is not None:
            self.best = Best(meta["best_score"], unprefixed("best", tensors), meta["best_step"])

    def wall(self) -> float:
        """Training wall seconds so far, over every call of the run."""
        return self.wall0 + time.perf_counter() - self.t0

    def select_best(self, evals) -> None:
        """Evaluate the online network; keep its weights if they are the best so far (latest on ties).
        A stop candidate (a mean >= ``stop_score``) is evaluated again on more episodes (the same
        first ones and more, twice as many or ``STOP_CONFIRM_EPISODES``, whichever is larger), and
        that mean is its score: one lucky evaluation does not end training."""
        res = _quick_eval(self.agent.online, self.cfg, self.step)
        if self.cfg.stop_score is not None and res.mean >= self.cfg.stop_score:
            res = _quick_eval(self.agent.online, self.cfg, self.step,
                              episodes=max(2 * self.cfg.eval_episodes, STOP_CONFIRM_EPISODES))
        evals.write(dict(step=self.step, mean=res.mean, std=round(res.std, 3), episodes=len(res.scores),
                         wall_s=round(self.wall(), 2)))
        online = self.agent.online
        self.best.offer(res.mean, lambda: {k: v.detach().clone() for k, v in online.state_dict().items()}, self.step)

    def solved(self) -> bool:
        """Early stopping: a model-selection evaluation has reached ``stop_score`` (resumes stay stopped)."""
        return self.cfg.stop_score is not None and self.best.value is not None and self.best.score >= self.cfg.stop_score

    def checkpoint(self, on_checkpoint: Callable[[int], None] | None) -> None:
        agent, cfg = self.agent, self.cfg
        opt_tensors, opt_meta = optimizer_to_flat(agent.optimizer)
        tensors = {
            **prefixed("online", agent.online.state_dict()),
            **prefixed("target", agent.target.state_dict()),
            **prefixed("optim", opt_tensors),
            "rng.torch": torch.get_rng_state(),
        }
        if self.best.value is not None:
            tensors.update(prefixed("best", self.best.value))
        meta = {
            "kind": q_kind(self.spec), "env_id": cfg.env_id, "config": cfg.to_dict(), "network": self.spec.to_dict(),
            "step": self.step, "episodes": self.episodes, "optimizer": opt_meta,
            "numpy_rng": self.rng.bit_generator.state,
            "best_score": None if self.best.value is None else self.best.score,
            "best_step": self.best.at, "snn_init_scales": self.init_scales,
            "wall_s": round(self.wall(), 3),
        }
        self.run.save(tensors, meta)
        if on_checkpoint is not None:
            on_checkpoint(self.step)

    def result(self) -> TrainResult:
        return TrainResult(self.run.path, self.step, self.episodes, time.perf_counter() - self.t0,
                           None if self.best.value is None else self.best.score, self.resumed_from)


def _build(cfg: DQNConfig, device: torch.device):
    """The training envs, the network spec and the agent; an env or an --arch the network cannot
    work on is refused (one line) before anything is written."""
    envs = make_vector(cfg.env_id, cfg.num_envs, seed=cfg.seed, training=True, **(cfg.train_env_kwargs or {}))
    obs_space = envs.single_observation_space
    try:
        check_agent_env("dsqn" if cfg.spiking is not None else "dqn", cfg.env_id, obs_space, envs.single_action_space)
        spec = network_spec(cfg, obs_space.shape, int(envs.single_action_space.n), obs_scale_for(obs_space))
        agent = DQNAgent(cfg, spec, device)
    except RuntimeError as e:  # e.g. CNN kernels larger than the observations
        envs.close()
        raise SpikeverseError(f"--arch {cfg.arch} does not fit {cfg.env_id}'s observations {tuple(obs_space.shape)}: "
                              f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
    except BaseException:
        envs.close()
        raise
    return envs, spec, agent


def train_dqn(
    cfg: DQNConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    time_budget_s: float | None = None,
) -> TrainResult:
    """Train a DQN (with the switches of ``cfg``) into ``run_dir``; resume if it holds a checkpoint.

    ``time_budget_s`` stops this call after that much wall time (with a checkpoint), so a rerun
    continues; the schedules still run over ``cfg.total_steps``.
    """
    cfg.validate()
    name = "dsqn" if cfg.spiking is not None else "dqn"
    run = RunDir(run_dir, {"agent": name, **cfg.to_dict()}, accepts=Q_KINDS, label=name.upper(), kind=Q_KINDS,
                 resumable=RESUMABLE_CHANGES, resume=resume, upgrade=upgrade_config)
    r = _Run(cfg, run, resolve_device(cfg.device))
    run.begin()
    metrics = run.metrics(METRICS, METRIC_FIELDS, step=r.step)
    evals = run.metrics(EVALS, EVAL_FIELDS, step=r.step)
    log = Progress(cfg.total_steps, f"train {name} {cfg.env_id}", unit="step", initial=r.step, enabled=progress)
    try:
        _loop(r, metrics, evals, log, on_checkpoint, time_budget_s)
    except KeyboardInterrupt:
        r.checkpoint(on_checkpoint)
        raise
    finally:
        log.close()
        metrics.close()
        evals.close()
        r.envs.close()
    return r.result()


def _loop(r: _Run, metrics, evals, log: Progress, on_checkpoint, time_budget_s: float | None) -> None:
    """Collect, learn, evaluate and checkpoint until the budget (steps, or this call's time)."""
    cfg, agent, rng, envs = r.cfg, r.agent, r.rng, r.envs
    buffer_cls = PrioritizedReplayBuffer if cfg.per else ReplayBuffer
    buffer_kwargs = dict(alpha=cfg.per_alpha, eps=cfg.per_eps) if cfg.per else {}
    obs_space = envs.single_observation_space
    buffer = buffer_cls(cfg.buffer_size, obs_space.shape, obs_space.dtype, seed=cfg.seed + r.step, **buffer_kwargs)
    nstep = NStepAccumulator(cfg.num_envs, cfg.nstep, cfg.gamma)
    learn_start = r.step + cfg.learning_starts if r.run.resuming else cfg.learning_starts
    eps_steps = int(cfg.epsilon_fraction * cfg.total_steps)
    n = cfg.num_envs
    obs, _ = envs.reset(seed=cfg.seed + r.step)
    ep_ret = np.zeros(n)
    ep_len = np.zeros(n, dtype=np.int64)
    losses: deque[float] = deque(maxlen=100)
    returns: deque[float] = deque(maxlen=10)  # shown as the progress line's return
    while r.step < cfg.total_steps and not r.solved():
        epsilon = 0.0 if cfg.noisy else linear_schedule(cfg.epsilon_start, cfg.epsilon_end, eps_steps, r.step)
        actions = agent.act(obs, epsilon, rng)
        nxt, rew, term, trunc, infos = envs.step(actions)
        done = term | trunc
        batch = nstep.push(obs, actions, rew, real_next_obs(nxt, infos, done), term, trunc)
        if batch is not None:
            buffer.add(**batch)
        obs = nxt
        r.step += n
        ep_ret += rew
        ep_len += 1
        for i in np.flatnonzero(done):
            r.episodes += 1
            wall = time.perf_counter() - r.t0
            metrics.write(dict(step=r.step, episode=r.episodes, episode_return=float(ep_ret[i]),
                               episode_length=int(ep_len[i]), loss=round(_mean(losses), 6),
                               epsilon=round(epsilon, 4), steps_per_s=round((r.step - r.step0) / wall, 1),
                               wall_s=round(r.wall0 + wall, 2)))
            returns.append(float(ep_ret[i]))
            ep_ret[i], ep_len[i] = 0.0, 0
        if r.step >= learn_start and len(buffer) >= cfg.batch_size and (r.step // n) % cfg.train_freq == 0:
            _learn(r, buffer, losses)
        if cfg.polyak_tau == 1.0 and r.step % cfg.target_update_interval < n:
            agent.update_target()
        if cfg.eval_interval and r.step >= learn_start and r.step % cfg.eval_interval < n:
            r.select_best(evals)
        if r.step % cfg.checkpoint_interval < n:
            r.checkpoint(on_checkpoint)
        advance = min(r.step, cfg.total_steps) - log.n
        if log.due(advance) and (log.bar is None or r.step % 1000 < n):
            log.update(advance, episodes=r.episodes, **{"return": round(_mean(returns), 1)}, eps=round(epsilon, 3),
                       loss=round(_mean(losses), 4), sps=int((r.step - r.step0) / (time.perf_counter() - r.t0)))
        else:
            log.update(advance)
        if time_budget_s is not None and time.perf_counter() - r.t0 > time_budget_s:
            break
    if cfg.eval_interval and r.step >= cfg.total_steps and r.step % cfg.eval_interval >= n and not r.solved():
        r.select_best(evals)  # the final weights compete too (unless just evaluated in the loop)
    r.checkpoint(on_checkpoint)


def _learn(r: _Run, buffer, losses: deque) -> None:
    """``gradient_steps`` updates on replayed batches (DSQN: after its initialisation)."""
    cfg, agent = r.cfg, r.agent
    if cfg.spiking is not None and cfg.spiking.init_rate > 0 and r.init_scales is None:
        r.init_scales = _calibrate(agent, buffer, cfg, r.device)
    beta = linear_schedule(cfg.per_beta0, 1.0, cfg.total_steps, r.step)
    for _ in range(cfg.gradient_steps):
        sample = buffer.sample(cfg.batch_size, beta=beta)
        loss, priorities = agent.update(sample)
        buffer.update_priorities(sample["indices"], priorities)
        losses.append(loss)
    if not math.isfinite(loss):
        raise SpikeverseError(f"training diverged at step {r.step} (loss {loss}); try a smaller --lr")
    if cfg.polyak_tau < 1.0:
        agent.update_target()


def _mean(values) -> float:
    return float(np.mean(values)) if values else float("nan")


def _calibrate(agent: DQNAgent, buffer, cfg: DQNConfig, device: torch.device) -> list[float]:
    """DSQN, before its first update: make every spiking layer fire at ``spiking.init_rate`` on up to
    512 observations of the replay buffer (``snn.init``); the target network gets the same weights."""
    obs = buffer.sample(min(len(buffer), 512))["obs"]
    scales = agent.online.calibrate(torch.as_tensor(obs, device=device), cfg.spiking.init_rate)
    agent.target.load_state_dict(agent.online.state_dict())
    return scales


def _quick_eval(net: QNetwork, cfg: DQNConfig, step: int, episodes: int | None = None):
    """Model selection during training: the evaluation protocol on a few fresh episodes
    (``eval_episodes`` unless ``episodes`` says otherwise)."""
    net.eval()
    episodes = episodes or cfg.eval_episodes
    try:
        return evaluate(net, cfg.env_id, episodes=episodes, seed=MODEL_SELECTION_SEED + step, num_envs=cfg.eval_episodes,
                        progress=False)
    finally:
        net.train()
