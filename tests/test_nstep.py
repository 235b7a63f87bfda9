"""n-step returns: the reference ``nstep_targets`` and the vector-env ``NStepAccumulator``."""

import numpy as np
import pytest

from spikeverse.errors import SpikeverseError
from spikeverse.rl.nstep import NStepAccumulator, nstep_targets


def test_nstep_targets_hand_computed_terminal_inside_window():
    # step 2 is terminal (s_3 is terminal); step 3 starts a new trajectory that is cut off at T=4
    G, d, boot = nstep_targets([1, 2, 3, 4], [0, 0, 1, 0], gamma=0.5, n=3)
    np.testing.assert_allclose(G, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4])
    np.testing.assert_allclose(d, [0, 0, 0, 0.5])
    np.testing.assert_array_equal(boot, [3, 3, 3, 4])


def test_nstep_targets_hand_computed_without_terminal():
    G, d, boot = nstep_targets([1, 1, 1, 1, 1], [0] * 5, gamma=0.9, n=3)
    np.testing.assert_allclose(G, [2.71, 2.71, 2.71, 1.9, 1.0])
    np.testing.assert_allclose(d, [0.729, 0.729, 0.729, 0.81, 0.9])
    np.testing.assert_array_equal(boot, [3, 4, 5, 5, 5])


def test_nstep_targets_n1_is_one_step():
    r = np.array([0.5, -1.0, 2.0])
    G, d, boot = nstep_targets(r, [0, 0, 1], gamma=0.99, n=1)
    np.testing.assert_allclose(G, r)
    np.testing.assert_allclose(d, [0.99, 0.99, 0.0])
    np.testing.assert_array_equal(boot, [1, 2, 3])


def test_bad_hyperparameters_raise_spikeverse_error():
    with pytest.raises(SpikeverseError):
        nstep_targets([1.0], [0], gamma=0.9, n=0)
    with pytest.raises(SpikeverseError):
        NStepAccumulator(2, n=0, gamma=0.9)
    with pytest.raises(SpikeverseError):
        NStepAccumulator(2, n=3, gamma=1.5)


def _obs_id(env, episode, t):
    return 10_000 * env + 100 * episode + t


def _run(episodes_per_env, n, gamma, seed=0):
    """Drive an accumulator with scripted episodes [(length, terminated?)] per env (each env's
    lengths sum to the same total, so every window is flushed at the end). Observations are
    1-D arrays holding an id; returns the emitted transitions keyed by the obs id, the reference
    ones (from nstep_targets) keyed the same way, and the per-push results."""
    rng = np.random.default_rng(seed)
    num_envs = len(episodes_per_env)
    steps = sum(length for length, _ in episodes_per_env[0])
    schedule = []  # per env: list of (episode, t, length, terminated)
    reference = {}
    for e, episodes in enumerate(episodes_per_env):
        assert sum(length for length, _ in episodes) == steps
        sched = []
        for k, (length, term) in enumerate(episodes):
            rewards = rng.normal(size=length)
            flags = np.zeros(length, dtype=bool)
            flags[-1] = term
            G, d, boot = nstep_targets(rewards, flags, gamma, n)
            for t in range(length):
                reference[_obs_id(e, k, t)] = (G[t], _obs_id(e, k, boot[t]), d[t])
                sched.append((k, t, length, term, rewards[t]))
        schedule.append(sched)
    acc = NStepAccumulator(num_envs, n, gamma)
    emitted, results = {}, []
    for step in range(steps):
        rows = [schedule[e][step] for e in range(num_envs)]
        obs = np.array([[_obs_id(e, k, t)] for e, (k, t, *_rest) in enumerate(rows)], dtype=np.float64)
        nxt = obs + 1  # the real next observation (the final one at an episode's last step)
        ends = np.array([t == length - 1 for _, t, length, _, _ in rows])
        term = ends & np.array([r[3] for r in rows])
        trunc = ends & ~term
        action = obs[:, 0].astype(np.int64) % 7
        reward = np.array([r[4] for r in rows])
        out = acc.push(obs, action, reward, nxt, term, trunc)
        results.append(out)
        if out is not None:
            for o, a, g, no, d in zip(out["obs"], out["action"], out["reward"], out["next_obs"], out["discount"]):
                key = int(o[0])
                assert key not in emitted
                assert a == key % 7
                emitted[key] = (g, int(no[0]), d)
    return emitted, reference, results


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_accumulator_matches_reference_on_two_envs(n):
    gamma = 0.9
    episodes = [
        [(5, True), (3, False), (4, True)],  # env 0: terminated, truncated, terminated
        [(2, False), (7, True), (3, False)],  # env 1: truncated, terminated, truncated
    ]
    emitted, reference, _ = _run(episodes, n, gamma)
    assert emitted.keys() == reference.keys()
    for key, (g, boot, d) in reference.items():
        got_g, got_boot, got_d = emitted[key]
        assert got_g == pytest.approx(g, rel=1e-6), key
        assert got_boot == boot, key
        assert got_d == pytest.approx(d, rel=1e-6), key


def test_accumulator_emits_when_window_is_full_or_episode_ends():
    _, _, results = _run([[(6, True)], [(6, False)]], n=3, gamma=0.5)
    sizes = [0 if r is None else len(r["action"]) for r in results]
    assert sizes == [0, 0, 2, 2, 2, 2 * 3]  # the last step flushes 3 pending windows per env
    assert results[0] is None
    last = results[-1]
    assert last["obs"].shape == (6, 1) and last["action"].dtype == np.int64
    assert last["reward"].dtype == np.float32 and last["discount"].dtype == np.float32


def test_accumulator_n1_is_one_step():
    rng = np.random.default_rng(3)
    gamma, num_envs = 0.99, 3
    acc = NStepAccumulator(num_envs, 1, gamma)
    for _ in range(50):
        obs = rng.integers(0, 256, size=(num_envs, 2, 4)).astype(np.uint8)
        nxt = rng.integers(0, 256, size=(num_envs, 2, 4)).astype(np.uint8)
        action, reward = rng.integers(0, 4, num_envs), rng.normal(size=num_envs)
        term, trunc = rng.random(num_envs) < 0.2, rng.random(num_envs) < 0.2
        out = acc.push(obs, action, reward, nxt, term, trunc)
        assert out["obs"].dtype == np.uint8
        np.testing.assert_array_equal(out["obs"], obs)
        np.testing.assert_array_equal(out["next_obs"], nxt)
        np.testing.assert_array_equal(out["action"], action)
        np.testing.assert_allclose(out["reward"], reward, rtol=1e-6)
        np.testing.assert_allclose(out["discount"], gamma * (1 - term), rtol=1e-6)


def test_accumulator_copies_observations():
    acc = NStepAccumulator(1, 2, 0.9)
    obs = np.zeros((1, 3), dtype=np.float32)
    acc.push(obs, [0], [1.0], obs + 1, [False], [False])
    obs[:] = 42.0  # an env that reuses its observation buffer in place
    out = acc.push(obs, [1], [1.0], obs + 1, [False], [False])
    np.testing.assert_array_equal(out["obs"], [[0, 0, 0]])
    assert out["reward"][0] == pytest.approx(1.9)
    assert out["discount"][0] == pytest.approx(0.81)
