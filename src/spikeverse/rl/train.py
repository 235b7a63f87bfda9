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
from spikeverse.io.checkpoint import (
    load_module_state,
    optimizer_from_flat,
    optimizer_to_flat,
    prefixed,
    save_checkpoint,
    unprefixed,
)
from spikeverse.io.rundir import CHECKPOINT, EVALS, METRICS, MetricsWriter, read_config, write_config
from spikeverse.progress import Progress
from spikeverse.rl.checkpoint import load_q_checkpoint, q_kind
from spikeverse.rl.config import DQNConfig
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
# options that may change when a run is resumed (a longer budget, another device, ...)
RESUMABLE_CHANGES = {"total_steps", "device", "eval_interval", "eval_episodes", "checkpoint_interval"}


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    episodes: int
    wall_s: float
    best_score: float | None
    resumed_from: int


def _check_resumable(saved: dict, cfg: DQNConfig, run_dir: Path) -> None:
    new = cfg.to_dict()
    diff = sorted(k for k in new if k not in RESUMABLE_CHANGES and saved.get(k) != new[k])
    if diff:
        k = diff[0]
        raise SpikeverseError(
            f"{run_dir} holds a run with {k}={saved.get(k)!r}, not {new[k]!r}; use another --out or the same options"
        )


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
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    old = read_config(run_dir)  # a corrupted config.yaml is refused here, never overwritten
    saved = None
    if ckpt_path.exists():
        if not resume:
            raise SpikeverseError(f"{run_dir} already holds a checkpoint (rerun without --no-resume to continue it)")
        saved = load_q_checkpoint(ckpt_path)  # an old run's config in today's names
        _check_resumable(saved[1].get("config") or {}, cfg, run_dir)
    elif old is not None and old.get("agent") not in ("dqn", "dsqn"):
        raise SpikeverseError(f"{run_dir} holds a '{old.get('agent')}' run; use another --out")
    device = resolve_device(cfg.device)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    envs = make_vector(cfg.env_id, cfg.num_envs, seed=cfg.seed, training=True, **(cfg.train_env_kwargs or {}))
    obs_space = envs.single_observation_space
    try:  # an env or an --arch the network cannot work on is refused before anything is written
        check_agent_env("dsqn" if cfg.spiking else "dqn", cfg.env_id, obs_space, envs.single_action_space)
        spec = network_spec(cfg, obs_space.shape, int(envs.single_action_space.n), obs_scale_for(obs_space))
        agent = DQNAgent(cfg, spec, device)
    except RuntimeError as e:  # e.g. CNN kernels larger than the observations
        envs.close()
        raise SpikeverseError(f"--arch {cfg.arch} does not fit {cfg.env_id}'s observations {tuple(obs_space.shape)}: "
                              f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
    except BaseException:
        envs.close()
        raise
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, {"agent": "dsqn" if cfg.spiking else "dqn", **cfg.to_dict()})
    step, episodes, best_score, best_step, best_state = 0, 0, -math.inf, None, None
    wall0 = 0.0  # training wall seconds of the steps before this call (kept across resumes)
    init_scales = None  # DSQN: the data-dependent initialisation's factors, once done
    if saved is not None:
        tensors, meta = saved
        load_module_state(agent.online, unprefixed("online", tensors), str(ckpt_path))
        load_module_state(agent.target, unprefixed("target", tensors), str(ckpt_path))
        optimizer_from_flat(agent.optimizer, unprefixed("optim", tensors), meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        rng.bit_generator.state = meta["numpy_rng"]
        step, episodes = meta["step"], meta["episodes"]
        wall0 = float(meta.get("wall_s", 0.0))
        init_scales = meta.get("snn_init_scales")
        if meta.get("best_score") is not None:
            best_score, best_step, best_state = meta["best_score"], meta["best_step"], unprefixed("best", tensors)
    resumed_from = step

    buffer_cls = PrioritizedReplayBuffer if cfg.per else ReplayBuffer
    buffer_kwargs = dict(alpha=cfg.per_alpha, eps=cfg.per_eps) if cfg.per else {}
    buffer = buffer_cls(cfg.buffer_size, obs_space.shape, obs_space.dtype, seed=cfg.seed + step, **buffer_kwargs)
    nstep = NStepAccumulator(cfg.num_envs, cfg.nstep, cfg.gamma)
    # no checkpoint (a first run, or one killed before its first checkpoint): the logs start afresh
    metrics = MetricsWriter(run_dir / METRICS, METRIC_FIELDS, fresh=saved is None)
    evals = MetricsWriter(run_dir / EVALS, EVAL_FIELDS, fresh=saved is None)
    if saved is not None:
        metrics.truncate_after(step)
        evals.truncate_after(step)

    def select_best() -> None:
        """Evaluate the online network; keep its weights if they are the best so far."""
        nonlocal best_score, best_step, best_state
        res = _quick_eval(agent.online, cfg, step)
        evals.write(dict(step=step, mean=res.mean, std=round(res.std, 3), episodes=len(res.scores),
                         wall_s=round(wall0 + time.perf_counter() - t0, 2)))
        if res.mean >= best_score:
            best_score, best_step = res.mean, step
            best_state = {k: v.detach().clone() for k, v in agent.online.state_dict().items()}

    def checkpoint() -> None:
        opt_tensors, opt_meta = optimizer_to_flat(agent.optimizer)
        tensors = {
            **prefixed("online", agent.online.state_dict()),
            **prefixed("target", agent.target.state_dict()),
            **prefixed("optim", opt_tensors),
            "rng.torch": torch.get_rng_state(),
        }
        if best_state is not None:
            tensors.update(prefixed("best", best_state))
        meta = {
            "kind": q_kind(spec), "env_id": cfg.env_id, "config": cfg.to_dict(), "network": spec.to_dict(),
            "step": step, "episodes": episodes, "optimizer": opt_meta,
            "numpy_rng": rng.bit_generator.state,
            "best_score": None if best_state is None else best_score,
            "best_step": best_step, "snn_init_scales": init_scales,
            "wall_s": round(wall0 + time.perf_counter() - t0, 3),
        }
        save_checkpoint(ckpt_path, tensors, meta)
        if on_checkpoint is not None:
            on_checkpoint(step)

    learn_start = step + cfg.learning_starts if saved is not None else cfg.learning_starts
    eps_steps = int(cfg.epsilon_fraction * cfg.total_steps)
    n = cfg.num_envs
    obs, _ = envs.reset(seed=cfg.seed + step)
    ep_ret = np.zeros(n)
    ep_len = np.zeros(n, dtype=np.int64)
    losses: deque[float] = deque(maxlen=100)
    returns: deque[float] = deque(maxlen=10)  # shown as the progress line's return
    t0, step0 = time.perf_counter(), step
    log = Progress(cfg.total_steps, f"train {'dsqn' if cfg.spiking else 'dqn'} {cfg.env_id}", unit="step",
                   initial=step, enabled=progress)
    try:
        while step < cfg.total_steps:
            epsilon = 0.0 if cfg.noisy else linear_schedule(cfg.epsilon_start, cfg.epsilon_end, eps_steps, step)
            actions = agent.act(obs, epsilon, rng)
            nxt, rew, term, trunc, infos = envs.step(actions)
            done = term | trunc
            batch = nstep.push(obs, actions, rew, real_next_obs(nxt, infos, done), term, trunc)
            if batch is not None:
                buffer.add(**batch)
            obs = nxt
            step += n
            ep_ret += rew
            ep_len += 1
            for i in np.flatnonzero(done):
                episodes += 1
                wall = time.perf_counter() - t0
                metrics.write(dict(step=step, episode=episodes, episode_return=float(ep_ret[i]),
                                   episode_length=int(ep_len[i]), loss=round(_mean(losses), 6),
                                   epsilon=round(epsilon, 4), steps_per_s=round((step - step0) / wall, 1),
                                   wall_s=round(wall0 + wall, 2)))
                returns.append(float(ep_ret[i]))
                ep_ret[i], ep_len[i] = 0.0, 0
            if step >= learn_start and len(buffer) >= cfg.batch_size and (step // n) % cfg.train_freq == 0:
                if cfg.spiking is not None and cfg.spiking.init_rate > 0 and init_scales is None:
                    init_scales = _calibrate(agent, buffer, cfg, device)
                beta = linear_schedule(cfg.per_beta0, 1.0, cfg.total_steps, step)
                for _ in range(cfg.gradient_steps):
                    sample = buffer.sample(cfg.batch_size, beta=beta)
                    loss, priorities = agent.update(sample)
                    buffer.update_priorities(sample["indices"], priorities)
                    losses.append(loss)
                if not math.isfinite(loss):
                    raise SpikeverseError(f"training diverged at step {step} (loss {loss}); try a smaller --lr")
                if cfg.polyak_tau < 1.0:
                    agent.update_target()
            if cfg.polyak_tau == 1.0 and step % cfg.target_update_interval < n:
                agent.update_target()
            if cfg.eval_interval and step >= learn_start and step % cfg.eval_interval < n:
                select_best()
            if step % cfg.checkpoint_interval < n:
                checkpoint()
            advance = min(step, cfg.total_steps) - log.n
            if log.due(advance) and (log.bar is None or step % 1000 < n):
                log.update(advance, episodes=episodes, **{"return": round(_mean(returns), 1)}, eps=round(epsilon, 3),
                           loss=round(_mean(losses), 4), sps=int((step - step0) / (time.perf_counter() - t0)))
            else:
                log.update(advance)
            if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
                break
        if cfg.eval_interval and step >= cfg.total_steps and step % cfg.eval_interval >= n:
            select_best()  # the final weights compete too (unless just evaluated in the loop)
        checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise
    finally:
        log.close()
        metrics.close()
        evals.close()
        envs.close()
    return TrainResult(run_dir, step, episodes, time.perf_counter() - t0,
                       None if best_state is None else best_score, resumed_from)


def _mean(values) -> float:
    return float(np.mean(values)) if values else float("nan")


def _calibrate(agent: DQNAgent, buffer, cfg: DQNConfig, device: torch.device) -> list[float]:
    """DSQN, before its first update: make every spiking layer fire at ``spiking.init_rate`` on up to
    512 observations of the replay buffer (``snn.init``); the target network gets the same weights."""
    obs = buffer.sample(min(len(buffer), 512))["obs"]
    scales = agent.online.calibrate(torch.as_tensor(obs, device=device), cfg.spiking.init_rate)
    agent.target.load_state_dict(agent.online.state_dict())
    return scales


def _quick_eval(net: QNetwork, cfg: DQNConfig, step: int):
    """Model selection during training: the evaluation protocol on a few fresh episodes."""
    net.eval()
    try:
        return evaluate(net, cfg.env_id, episodes=cfg.eval_episodes, seed=MODEL_SELECTION_SEED + step, num_envs=cfg.eval_episodes,
                        progress=False)
    finally:
        net.train()
