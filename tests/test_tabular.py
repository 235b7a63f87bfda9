"""Tabular Q-learning: the update rule, terminal vs truncation bootstrap, Taxi, the Policy interface."""

import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from spikeverse.envs import make
from spikeverse.errors import SpikeverseError
from spikeverse.policy import Policy, greedy_actions
from spikeverse.rl.tabular import TabularConfig, TabularQ, train_tabular


class TwoStateLoop(gym.Env):
    """s0 --(r=0)--> s1 --(r=1)--> s0, which ends the episode (terminated or truncated)."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(1)

    def __init__(self, truncate: bool):
        self.truncate = truncate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        if self.s == 0:
            self.s = 1
            return 1, 0.0, False, False, {}
        self.s = 0
        return 0, 1.0, not self.truncate, self.truncate, {}


def _config(**kw):
    return TabularConfig(**{**dict(alpha=1.0, gamma=0.5, episodes=2, epsilon_start=0.0, epsilon_end=0.0), **kw})


def test_update_one_step_exact_value():
    q = TabularQ(np.array([[0.0, 0.0], [2.0, 4.0]]))
    td = q.update(0, 1, r=1.0, s_next=1, terminated=False, alpha=0.5, gamma=0.9)
    assert td == pytest.approx(1.0 + 0.9 * 4.0)
    assert q.table[0, 1] == pytest.approx(0.5 * (1.0 + 0.9 * 4.0))
    q.update(0, 0, r=1.0, s_next=1, terminated=True, alpha=0.5, gamma=0.9)
    assert q.table[0, 0] == pytest.approx(0.5)  # no bootstrap from a terminal state


def test_terminal_vs_truncation_bootstrap():
    # alpha = 1, gamma = 0.5. Episode 1: Q(s0) = 0 + 0.5 Q(s1) = 0, Q(s1) = 1 (+ 0.5 Q(s0) = 0).
    # Episode 2: Q(s0) = 0.5 * 1 = 0.5; Q(s1) = 1 if terminated, 1 + 0.5 * 0.5 = 1.25 if truncated.
    q_term, returns = train_tabular(TwoStateLoop(truncate=False), _config())
    q_trunc, _ = train_tabular(TwoStateLoop(truncate=True), _config())
    assert returns == [1.0, 1.0]
    np.testing.assert_allclose(q_term.table[:, 0], [0.5, 1.0])
    np.testing.assert_allclose(q_trunc.table[:, 0], [0.5, 1.25])


def test_callbacks_and_linear_epsilon_decay():
    seen, ticks = [], []

    class Bar:
        def update(self, n):
            ticks.append(n)

    cfg = _config(episodes=6, epsilon_start=1.0, epsilon_end=0.2, epsilon_decay_episodes=4)
    _, returns = train_tabular(TwoStateLoop(truncate=False), cfg, progress=Bar(),
                               on_episode=lambda e, r, eps: seen.append((e, r, eps)))
    assert [e for e, _, _ in seen] == list(range(6)) and ticks == [1] * 6
    assert [r for _, r, _ in seen] == returns
    np.testing.assert_allclose([eps for _, _, eps in seen], [1.0, 0.8, 0.6, 0.4, 0.2, 0.2])


def test_q_values_shape_dtype_and_policy_protocol():
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    q = TabularQ(table)
    assert isinstance(q, Policy) and q.num_actions == 3 and q.device == torch.device("cpu")
    out = q.q_values(torch.tensor([3, 0, 3]))
    assert out.shape == (3, 3) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), table[[3, 0, 3]])
    np.testing.assert_array_equal(greedy_actions(q, [1, 2]), [2, 2])


def test_taxi_reaches_greedy_mean_return_7():
    cfg = TabularConfig.for_env("Taxi-v3", seed=0)
    t0 = time.perf_counter()
    q, returns = train_tabular("Taxi-v3", cfg)
    assert time.perf_counter() - t0 < 15
    assert len(returns) == cfg.episodes and np.mean(returns[:100]) < -100  # starts near random
    env = make("Taxi-v3")
    scores = []
    for e in range(100):
        s, _ = env.reset(seed=10_000 + e)
        ret, done = 0.0, False
        while not done:
            s, r, term, trunc, _ = env.step(int(greedy_actions(q, [s])[0]))
            ret, done = ret + r, term or trunc
        scores.append(ret)
    env.close()
    assert np.mean(scores) >= 7


def test_same_seed_same_run():
    cfg = TabularConfig.for_env("FrozenLake-v1", episodes=300, seed=3)
    q1, r1 = train_tabular("FrozenLake-v1", cfg)
    q2, r2 = train_tabular("FrozenLake-v1", cfg)
    assert r1 == r2
    np.testing.assert_array_equal(q1.table, q2.table)


@pytest.mark.parametrize("bad", [dict(alpha=0.0), dict(alpha=1.5), dict(gamma=-0.1), dict(gamma=1.01),
                                 dict(episodes=0), dict(epsilon_end=0.5, epsilon_start=0.1), dict(lr=0.1)])
def test_invalid_hyperparameters_raise(bad):
    with pytest.raises(SpikeverseError):
        TabularConfig.for_env("Taxi-v3", **bad)


def test_invalid_config_or_env_rejected_by_train():
    with pytest.raises(SpikeverseError):
        train_tabular(TwoStateLoop(truncate=False), TabularConfig(alpha=2.0))
    with pytest.raises(SpikeverseError, match="discrete"):
        train_tabular("CartPole-v1", TabularConfig(episodes=1))
    with pytest.raises(SpikeverseError):
        train_tabular("NoSuchEnv-v0", TabularConfig(episodes=1))
