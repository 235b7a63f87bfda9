"""Registered Gymnasium environments (classic control, toy text, anything else registered).

Ids are checked against ``gymnasium.envs.registry`` first, so that an unknown id gives one
:class:`SpikeverseError` line instead of Gymnasium's long error. Float observations are cast to
float32.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from spikeverse.errors import SpikeverseError

# ids of the literature that newer Gymnasium releases renamed with unchanged default dynamics
# (Taxi-v4 only fixed the optional is_rainy / fickle_passenger variants)
ALIASES = {"Taxi-v3": "Taxi-v4"}


def resolve_id(env_id: str) -> str:
    """The registered id for ``env_id``: ``env_id`` itself, or its alias when only that is registered."""
    alias = ALIASES.get(env_id)
    if env_id not in gym.envs.registry and alias in gym.envs.registry:
        return alias
    return env_id


def unknown_env_error(env_id: str) -> SpikeverseError:
    """One-line error for an unregistered id, naming the registered versions of the same name if any."""
    name = re.sub(r"-v\d+$", "", env_id)
    versions = sorted(k for k in gym.envs.registry if re.sub(r"-v\d+$", "", k) == name)
    hint = f"registered: {', '.join(versions)}" if versions else "try CartPole-v1, MinAtar/Breakout, ALE/Breakout-v5"
    return SpikeverseError(f"unknown environment '{env_id}' ({hint})")


def make_gym(env_id: str, *, max_episode_steps: int | None = None, render_mode: str | None = None, **kwargs) -> gym.Env:
    """``gym.make`` of a registered id (aliases applied) with float observations as float32.

    ``max_episode_steps=None`` keeps the env's registered limit.
    """
    env = gym.make(resolve_id(env_id), max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    space = env.observation_space
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating) and space.dtype != np.float32:
        env = gym.wrappers.DtypeObservation(env, np.float32)
    return env
