"""``make(env_id)`` for every family (classic control and toy text, MinAtar, Atari), the env's family,
its evaluation cap, its no-op action and the scale of its observations."""

from __future__ import annotations

from functools import cache

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from spikeverse.envs.atari import is_atari_id, make_atari, register_ale
from spikeverse.envs.classic import make_gym, resolve_id, unknown_env_error
from spikeverse.envs.minatar import MinAtarEnv, is_minatar_id, make_minatar, parse_minatar_id

ATARI_EVAL_CAP = 18_000  # agent steps (after frame skip), the seed paper authors' evaluation cap


@cache
def _has_discrete_obs(env_id: str) -> bool:
    env = gym.make(env_id)
    try:
        return isinstance(env.observation_space, spaces.Discrete)
    finally:
        env.close()


def env_family(env_id: str) -> str:
    """``"minatar"``, ``"atari"``, ``"toy_text"`` (discrete observations) or ``"classic"``;
    an unknown id raises :class:`SpikeverseError`."""
    if is_minatar_id(env_id):
        parse_minatar_id(env_id)
        return "minatar"
    registered = resolve_id(env_id)
    if registered not in gym.envs.registry:
        register_ale()
    if registered not in gym.envs.registry:
        raise unknown_env_error(env_id)
    if is_atari_id(registered):
        return "atari"
    return "toy_text" if _has_discrete_obs(registered) else "classic"


def obs_scale_for(space) -> float:
    """The factor a network applies to its input: uint8 frames (Atari) are scaled to [0, 1]."""
    return 1.0 / 255.0 if np.dtype(space.dtype) == np.uint8 else 1.0


def default_eval_cap(env_id: str) -> int | None:
    """Evaluation episode cap in agent steps: 18,000 for Atari, None (the env's own limit) otherwise."""
    return ATARI_EVAL_CAP if env_family(env_id) == "atari" else None


def make(
    env_id: str,
    *,
    seed: int | None = None,
    training: bool = False,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    **kwargs,
) -> gym.Env:
    """One environment for ``env_id``.

    ``max_episode_steps`` caps an episode in agent steps (default: the env's own limit, and
    18,000 for Atari evaluation). ``seed`` seeds the action space only: pass it to the first
    ``reset`` as well. Other keywords go to the family's constructor: MinAtar takes
    ``sticky_action_prob`` (0.1), ``difficulty_ramping`` (True) and ``full_action_set``; Atari
    takes ``fire_reset`` (False) and ale-py's own options; Gymnasium ids take the env's options.
    """
    family = env_family(env_id)
    if family == "minatar":
        env = make_minatar(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    elif family == "atari":
        if max_episode_steps is None and not training:
            max_episode_steps = ATARI_EVAL_CAP
        env = make_atari(env_id, training=training, max_episode_steps=max_episode_steps, render_mode=render_mode,
                         **kwargs)
    else:
        env = make_gym(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def noop_action(env: gym.Env) -> int | None:
    """Index of the no-op action (Atari ``NOOP``, MinAtar 0), or None when the env has none
    (classic control: every CartPole action pushes)."""
    base = env.unwrapped
    if isinstance(base, MinAtarEnv):
        return 0
    if hasattr(base, "get_action_meanings"):
        meanings = base.get_action_meanings()
        return meanings.index("NOOP") if "NOOP" in meanings else None
    return None
