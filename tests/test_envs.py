"""spikeverse.envs: make() for classic, toy-text, MinAtar and Atari ids; vector envs' final observations."""

import gymnasium as gym
import numpy as np
import pytest

from spikeverse.envs import default_eval_cap, env_family, make, make_vector, noop_action, real_next_obs
from spikeverse.errors import SpikeverseError

ATARI_IDS = ["ALE/Breakout-v5", "BreakoutNoFrameskip-v4"]


def test_cartpole_float32_and_no_noop():
    env = make("CartPole-v1", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (4,)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and obs.shape == (4,) and reward == 1.0
    assert noop_action(env) is None


@pytest.mark.parametrize(
    "env_id, family",
    [("CartPole-v1", "classic"), ("Acrobot-v1", "classic"), ("FrozenLake-v1", "toy_text"), ("Taxi-v3", "toy_text"),
     ("MinAtar/breakout", "minatar"), ("MinAtar/SpaceInvaders-v1", "minatar"), ("ALE/Breakout-v5", "atari"),
     ("BreakoutNoFrameskip-v4", "atari")],
)
def test_env_family(env_id, family):
    assert env_family(env_id) == family
    assert default_eval_cap(env_id) == (18_000 if family == "atari" else None)


def test_taxi_v3_makes_the_same_game():
    env = make("Taxi-v3")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.n == 500 and env.action_space.n == 6 and 0 <= obs < 500


@pytest.mark.parametrize("env_id", ["Foo-v0", "CartPole-v9", "MinAtar/Pong", "ALE/NotAGame-v5"])
def test_unknown_id_is_one_line_error(env_id):
    with pytest.raises(SpikeverseError) as err:
        make(env_id)
    message = str(err.value)
    assert env_id in message and "\n" not in message
    with pytest.raises(SpikeverseError):
        env_family(env_id)


def test_minatar_breakout_observation_and_actions():
    env = make("MinAtar/Breakout", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.float32
    assert env.observation_space.shape == (4, 10, 10)
    assert set(np.unique(obs)) <= {0.0, 1.0} and obs.sum() > 0
    # channels first: the paddle (channel 0) sits on the bottom row
    assert obs[0, 9].sum() == 1 and obs[0, :9].sum() == 0
    assert env.action_space.n == 3
    assert noop_action(env) == 0
    full = make("MinAtar/Breakout", full_action_set=True)
    assert full.action_space.n == 6 and noop_action(full) == 0
    assert make("MinAtar/Breakout-v0").action_space.n == 6  # minatar's own -v0 means the full set


def _minatar_rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for a in actions:
        obs, _, terminated, truncated, _ = env.step(a)
        frames.append(obs)
        if terminated or truncated:
            frames.append(env.reset()[0])
    return np.stack(frames)


def test_minatar_same_seed_same_episode():
    actions = np.random.default_rng(0).integers(3, size=50)
    first = _minatar_rollout(make("MinAtar/Breakout"), 3, actions)
    other = make("MinAtar/Breakout")
    other.reset(seed=7)
    for a in actions[:20]:  # a different history must not leak into the reseeded episode
        other.step(a)
    np.testing.assert_array_equal(_minatar_rollout(other, 3, actions), first)
    assert not np.array_equal(_minatar_rollout(make("MinAtar/Breakout"), 4, actions), first)


def test_minatar_time_limit():
    env = make("MinAtar/Freeway", max_episode_steps=10)
    env.reset(seed=0)
    ends = [env.step(0)[3] for _ in range(10)]
    assert ends == [False] * 9 + [True]


@pytest.mark.parametrize("env_id", ATARI_IDS)
def test_atari_training_life_loss_and_clipping(env_id):
    env = make(env_id, training=True, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert noop_action(env) == 0
    ale = env.unwrapped.ale
    assert ale.lives() == 5
    for _ in range(500):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward in (-1.0, 0.0, 1.0)
        if terminated or truncated:
            break
    assert terminated and ale.lives() == 4  # a lost life ends the learner's episode ...
    frame = ale.getEpisodeFrameNumber()
    obs, _ = env.reset()
    assert ale.lives() == 4 and ale.getEpisodeFrameNumber() > frame  # ... but the game goes on
    assert obs.shape == (4, 84, 84)
    for _ in range(2000):  # at game over, reset starts a new game
        if env.step(env.action_space.sample())[2] and ale.lives() == 0:
            break
    assert ale.lives() == 0
    env.reset()
    assert ale.lives() == 5


def test_atari_reward_clipping_only_in_training():
    rewards = {}
    for training in (False, True):
        env = make("ALE/SpaceInvaders-v5", training=training, seed=0)
        env.reset(seed=0)
        rewards[training] = {env.step(env.action_space.sample())[1] for _ in range(300)}
    assert max(rewards[False]) > 1.0
    assert rewards[True] <= {-1.0, 0.0, 1.0} and 1.0 in rewards[True]


@pytest.mark.parametrize("env_id", ATARI_IDS)
def test_atari_evaluation_keeps_lives_and_caps_steps(env_id):
    env = make(env_id, training=False, max_episode_steps=50, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    ale = env.unwrapped.ale
    for step in range(1, 51):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        if truncated:
            break
    assert step == 50 and truncated
    assert ale.lives() < 5  # lives were lost without ending the episode


def _time_limits(env):
    caps = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            caps.append(env._max_episode_steps)
        env = env.env
    return caps


def test_atari_default_caps():
    assert _time_limits(make("ALE/Breakout-v5")) == [18_000]
    assert _time_limits(make("ALE/Breakout-v5", training=True)) == []
    assert _time_limits(make("ALE/Breakout-v5", max_episode_steps=100)) == [100]


def test_make_vector_final_obs():
    envs = make_vector("CartPole-v1", 3, seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    for _ in range(500):
        nxt, _, terminated, truncated, infos = envs.step(envs.action_space.sample())
        dones = terminated | truncated
        if dones.any():
            break
    assert dones.any()
    real = real_next_obs(nxt, infos, dones)
    differs = np.any(real != nxt, axis=1)
    np.testing.assert_array_equal(differs, dones)
    assert np.all(np.abs(nxt[dones]) <= 0.05)  # the returned obs is a fresh reset state
    ended = real[dones]
    assert np.all((np.abs(ended[:, 0]) > 2.4) | (np.abs(ended[:, 2]) > 0.2094))  # the true last state
    envs.close()


def test_real_next_obs_needs_same_step_autoreset():
    obs = np.zeros((2, 4), np.float32)
    assert real_next_obs(obs, {}, np.array([False, False])) is obs
    with pytest.raises(ValueError):
        real_next_obs(obs, {}, np.array([True, False]))


def test_make_vector_rejects_bad_arguments():
    with pytest.raises(SpikeverseError):
        make_vector("Foo-v0", 2)
    with pytest.raises(SpikeverseError):
        make_vector("CartPole-v1", 0)
