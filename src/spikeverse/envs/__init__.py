"""Environments behind one ``make(env_id)``: Gymnasium classic control and toy text
(``CartPole-v1``, ``Taxi-v3``...), MinAtar games (``MinAtar/Breakout``) and Atari
(``ALE/Breakout-v5``, ``BreakoutNoFrameskip-v4``) with the Mnih 2015 preprocessing.

``training=True`` gives the learner's view (Atari: life loss as terminal, clipped rewards, up to
30 no-op starts); ``training=False`` the evaluation view (whole game, unclipped score, no
internal no-ops, a cap of 18,000 agent steps for Atari). ``make(seed=...)`` seeds the action
space; pass the same seed to the first ``reset``, which seeds the environment itself.
"""

from spikeverse.envs.make import ATARI_EVAL_CAP, default_eval_cap, env_family, make, noop_action, obs_scale_for
from spikeverse.envs.vector import make_vector, real_next_obs

__all__ = ["ATARI_EVAL_CAP", "default_eval_cap", "env_family", "make", "make_vector", "noop_action", "obs_scale_for",
           "real_next_obs"]
