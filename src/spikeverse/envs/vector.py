"""Vectorised environments with same-step autoreset, and the learner's view of their last observations."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np

from spikeverse.envs.make import env_family, make
from spikeverse.errors import SpikeverseError


def make_vector(
    env_id: str,
    num_envs: int,
    *,
    seed: int | None = None,
    training: bool = False,
    asynchronous: bool = False,
    **kwargs,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make(env_id, ...)`` stepped together (``AsyncVectorEnv`` if
    ``asynchronous``, else ``SyncVectorEnv``), with ``AutoresetMode.SAME_STEP``.

    Contract: when sub-env i ends in ``step``, the returned ``obs[i]`` is already the first
    observation of its next episode, and ``infos["final_obs"][i]`` (where the mask
    ``infos["_final_obs"][i]`` is True) is the true last observation; ``infos["final_info"]``
    holds that step's info. A learner must store ``real_next_obs(obs, infos, terminated | truncated)``
    as s', not bootstrap where ``terminated`` (the episode really ended) and bootstrap where only
    ``truncated`` (a time limit cut it). ``seed`` seeds the action spaces (sub-env i with
    ``seed + i``); pass it to the first ``reset`` too, which seeds sub-env i with ``seed + i``.
    """
    if num_envs < 1:
        raise SpikeverseError(f"num_envs must be >= 1, got {num_envs}")
    env_family(env_id)  # an unknown id fails here, in this process
    fns = [partial(make, env_id, seed=None if seed is None else seed + i, training=training, **kwargs)
           for i in range(num_envs)]
    cls = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    envs = cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    if seed is not None:
        envs.action_space.seed(seed)
    return envs


def real_next_obs(next_obs: np.ndarray, infos: dict, dones: np.ndarray) -> np.ndarray:
    """``next_obs`` from a same-step-autoreset vector env, with ``infos["final_obs"][i]``
    substituted wherever ``dones[i]`` (terminated or truncated); a copy when anything changes."""
    ended = np.flatnonzero(dones)
    if ended.size == 0:
        return next_obs
    if "final_obs" not in infos:
        raise ValueError("episodes ended but infos has no 'final_obs': the vector env must use AutoresetMode.SAME_STEP")
    out = next_obs.copy()
    for i in ended:
        out[i] = infos["final_obs"][i]
    return out
