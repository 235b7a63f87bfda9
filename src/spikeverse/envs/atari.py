"""Atari 2600 games through ale-py with the DQN preprocessing of Mnih et al. (2015).

Wrapper stack, inside out: the ALE env with frameskip 1 and sticky actions off;
``AtariPreprocessing`` (repeat each action 4 frames, max over the last 2, 84x84 grayscale;
up to 30 random no-ops after reset in training only); an optional cap in agent steps; for
training only, life loss as terminal (the game itself is reset only at game over) and rewards
clipped to sign(r); optional FIRE on reset; a stack of the last 4 frames. Observations are
uint8 ``(4, 84, 84)``.
"""

from __future__ import annotations

from functools import cache

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit, TransformReward


@cache
def register_ale() -> None:
    """Register ale-py's ids (``ALE/Breakout-v5``, ``BreakoutNoFrameskip-v4``...) with Gymnasium, once."""
    import ale_py

    gym.register_envs(ale_py)


def is_atari_id(env_id: str) -> bool:
    """Whether a registered ``env_id`` is an ale-py game."""
    spec = gym.envs.registry.get(env_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


class EpisodicLife(gym.Wrapper):
    """Life loss ends the learner's episode; the game itself is reset only when it is over.

    As OpenAI baselines' ``EpisodicLifeEnv``: after a lost life, ``reset`` continues the same
    game with one no-op step.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after every reset (including the life-loss resets of :class:`EpisodicLife`)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.fire = env.unwrapped.get_action_meanings().index("FIRE")

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def make_atari(
    env_id: str,
    *,
    training: bool,
    max_episode_steps: int | None,
    fire_reset: bool = False,
    render_mode: str | None = None,
    **kwargs,
) -> gym.Env:
    """Atari env with the Mnih 2015 preprocessing (see the module docstring).

    ``max_episode_steps`` caps a whole game in agent steps (after frame skip). ``fire_reset``
    is ignored for games without a FIRE action. Other keywords go to ``gym.make``.
    """
    register_ale()
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, render_mode=render_mode, **kwargs)
    env = AtariPreprocessing(env, noop_max=30 if training else 0, frame_skip=4, screen_size=84,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps)
    if training:
        env = EpisodicLife(env)
        env = TransformReward(env, lambda r: float(np.sign(r)))
    if fire_reset and "FIRE" in env.unwrapped.get_action_meanings():
        env = FireReset(env)
    return FrameStackObservation(env, 4)
