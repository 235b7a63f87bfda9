"""Tabular Q-learning for environments with discrete observations and actions (SPEC R-RL-TAB).

Update after every step (Watkins' Q-learning)::

    Q(s, a) += alpha * [r + gamma * max_a' Q(s', a') - Q(s, a)]

where the bootstrap term is 0 when s' is terminal and kept when the episode is only truncated
(time limit). Behaviour is epsilon-greedy; epsilon decays *linearly* per episode from
``epsilon_start`` to ``epsilon_end`` over ``epsilon_decay_episodes`` episodes, then stays flat.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from spikeverse.envs import make
from spikeverse.envs.classic import ALIASES
from spikeverse.errors import SpikeverseError, require_all
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.io.rundir import METRICS, RunDir
from spikeverse.progress import reporter
from spikeverse.rl.env_check import check_agent_env
from spikeverse.rl.schedules import linear_schedule


@dataclass
class TabularConfig:
    alpha: float = 0.1
    gamma: float = 0.99
    episodes: int = 5_000
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_episodes: int = 2_500
    seed: int = 0

    @classmethod
    def for_env(cls, env_id: str, **overrides) -> "TabularConfig":
        """Defaults tuned per environment; ``overrides`` with value None are ignored."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise SpikeverseError(f"unknown tabular option(s): {', '.join(sorted(unknown))}")
        cfg = replace(cls(**_ENV_DEFAULTS.get(ALIASES.get(env_id, env_id), {})), **overrides)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Reject impossible hyperparameters with a one-line message."""
        checks = [
            (0.0 < self.alpha <= 1.0, f"alpha (--lr) must be in (0, 1], got {self.alpha}"),
            (int(self.seed) == self.seed and self.seed >= 0, f"--seed must be an integer >= 0, got {self.seed}"),
            (0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.episodes > 0, f"episodes (--steps) must be > 0, got {self.episodes}"),
            (0.0 <= self.epsilon_end <= self.epsilon_start <= 1.0, "need 0 <= epsilon_end <= epsilon_start <= 1"),
            (self.epsilon_decay_episodes >= 0, "epsilon_decay_episodes must be >= 0"),
        ]
        require_all(checks)

    def to_dict(self) -> dict:
        return asdict(self)


# keyed by registered id (Taxi-v3 is an alias of Taxi-v4); chosen on seeds 0-19 (Taxi) / 0-4 (FrozenLake).
# Greedy over 100 episodes on untuned seeds 100-119 (benchmarks/results/tabular.json): Taxi median 7.77
# (7.59-8.38), FrozenLake (slippery 4x4) success median 0.75 (0.67-0.85)
_ENV_DEFAULTS: dict[str, dict] = {
    "Taxi-v4": dict(alpha=0.5, gamma=0.99, episodes=3_000, epsilon_end=0.01, epsilon_decay_episodes=1_500),
    "FrozenLake-v1": dict(alpha=0.05, gamma=0.99, episodes=10_000, epsilon_end=0.01, epsilon_decay_episodes=7_000),
}


class TabularQ:
    """A Q-table ``[num_states, num_actions]`` behind the :class:`~spikeverse.policy.Policy` interface."""

    def __init__(self, table: np.ndarray):
        self.table = np.asarray(table, dtype=np.float64)
        if self.table.ndim != 2:
            raise SpikeverseError(f"a Q-table must be 2-D [states, actions], got shape {self.table.shape}")
        self.num_states, self.num_actions = self.table.shape
        self.device = torch.device("cpu")

    @classmethod
    def zeros(cls, num_states: int, num_actions: int) -> "TabularQ":
        return cls(np.zeros((num_states, num_actions)))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Rows Q(s, .) for a batch of integer states ``[B]`` -> float32 ``[B, A]``."""
        states = torch.as_tensor(obs).reshape(-1).cpu().numpy().astype(np.int64)
        return torch.from_numpy(self.table[states].astype(np.float32))

    def update(self, s: int, a: int, r: float, s_next: int, terminated: bool, alpha: float, gamma: float) -> float:
        """Q(s,a) += alpha [r + gamma max_a' Q(s',a') (0 if terminated) - Q(s,a)]; returns the TD error."""
        target = r if terminated else r + gamma * self.table[s_next].max()
        td = target - self.table[s, a]
        self.table[s, a] += alpha * td
        return float(td)


def train_tabular(
    env_id_or_env: str | gym.Env,
    config: TabularConfig,
    *,
    progress=None,
    on_episode: Callable[[int, float, float], None] | None = None,
) -> tuple[TabularQ, list[float]]:
    """Train a Q-table by epsilon-greedy Q-learning; returns it and the return of every episode.

    ``progress``: None (a bar on a terminal, a line per ~10% of the episodes otherwise), True,
    False (silent), or a tqdm-like object that gets ``update(1)`` per episode; ``on_episode(episode, ret,
    epsilon)`` is called after each one. An env passed in is reset with ``config.seed`` and left open.
    """
    config.validate()
    env = make(env_id_or_env, training=True) if isinstance(env_id_or_env, str) else env_id_or_env
    try:
        if not (isinstance(env.observation_space, spaces.Discrete) and isinstance(env.action_space, spaces.Discrete)):
            raise SpikeverseError("tabular Q-learning needs discrete observation and action spaces")
        q = TabularQ.zeros(int(env.observation_space.n), int(env.action_space.n))
        rng = np.random.default_rng(config.seed)
        returns: list[float] = []
        report = reporter(progress, config.episodes, f"train tabular {getattr(env.spec, 'id', None) or 'env'}",
                          unit="episode")
        s, _ = env.reset(seed=config.seed)
        for episode in range(config.episodes):
            if episode:
                s, _ = env.reset()
            epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, config.epsilon_decay_episodes, episode)
            ret, done = 0.0, False
            while not done:
                a = int(rng.integers(q.num_actions)) if rng.random() < epsilon else int(q.table[s].argmax())
                s_next, r, terminated, truncated, _ = env.step(a)
                q.update(s, a, float(r), s_next, terminated, config.alpha, config.gamma)
                ret += float(r)
                s, done = s_next, terminated or truncated
            returns.append(ret)
            report.update(1, epsilon=round(epsilon, 3))
            if on_episode is not None:
                on_episode(episode, ret, epsilon)
        report.close()
    finally:
        if isinstance(env_id_or_env, str):
            env.close()
    return q, returns



def train_tabular_run(config: TabularConfig, env_id: str, run_dir: str | Path, *, resume: bool = True,
                      progress: bool | None = None) -> dict:
    """Train into a run directory (config.yaml, metrics.csv, checkpoint.safetensors).

    Tabular runs take seconds and are checkpointed once, at the end: a directory holding the
    finished run of the same config is returned as is; anything else is trained from the start.
    """
    config.validate()
    check_agent_env("tabular", env_id)
    run = RunDir(run_dir, {"agent": "tabular", "env_id": env_id, **config.to_dict()}, accepts=("tabular",),
                 label="tabular", kind="tabular", resume=resume)
    if run.saved is not None:
        if "summary" not in run.saved[1]:
            raise SpikeverseError(f"{run.path} holds an unfinished tabular run; use another --out")
        return run.saved[1]["summary"]
    run.begin()
    metrics = run.metrics(METRICS, ["episode", "episode_return", "epsilon"])
    t0 = time.perf_counter()
    try:
        q, returns = train_tabular(env_id, config, progress=progress, on_episode=lambda e, r, eps: metrics.write(
            dict(episode=e + 1, episode_return=r, epsilon=round(eps, 4))))
    finally:
        metrics.close()
    summary = {"run_dir": str(run.path), "env": env_id, "agent": "tabular", "episodes": len(returns),
               "wall_s": round(time.perf_counter() - t0, 2),
               "last_100_mean": float(np.mean(returns[-100:]))}
    run.save({"q": torch.from_numpy(q.table)}, {"env_id": env_id, "config": config.to_dict(), "summary": summary})
    return summary


def load_tabular(run_dir: str | Path) -> tuple[TabularQ, dict]:
    """The Q-table of a tabular run and its checkpoint metadata."""
    tensors, meta = load_checkpoint(run_dir, kind="tabular")
    if "q" not in tensors or tensors["q"].dim() != 2:
        raise SpikeverseError(f"{run_dir}: the tabular checkpoint holds no [S, A] Q-table")
    return TabularQ(tensors["q"].numpy()), meta
