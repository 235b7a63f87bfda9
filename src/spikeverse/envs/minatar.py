"""MinAtar games (Young & Tian, 2019) as Gymnasium environments.

Our own thin :class:`gymnasium.Env` around ``minatar.Environment`` (the ``minatar`` package is
a dependency; none of its code is copied here). Observations are channels-first float32 arrays
``(C, 10, 10)`` with values in {0, 1}; action 0 is the no-op in both action sets.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import minatar
import numpy as np
from gymnasium import spaces

from spikeverse.errors import SpikeverseError

#: Canonical id name -> minatar module name.
GAMES = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
_BY_KEY = {name.lower(): game for name, game in GAMES.items()}
_ID = re.compile(r"^minatar/(?P<name>[a-z_]+?)(?:-v(?P<version>\d+))?$", re.IGNORECASE)


def is_minatar_id(env_id: str) -> bool:
    """Whether ``env_id`` is in the ``MinAtar/`` namespace (case-insensitive)."""
    return env_id.lower().startswith("minatar/")


def parse_minatar_id(env_id: str) -> tuple[str, int | None]:
    """Map ``MinAtar/Breakout``, ``MinAtar/space_invaders``, ``MinAtar/Breakout-v1``... to
    ``(minatar game name, version or None)``."""
    m = _ID.match(env_id)
    game = _BY_KEY.get(m.group("name").replace("_", "").lower()) if m else None
    version = int(m.group("version")) if m and m.group("version") is not None else None
    if game is None or version not in (None, 0, 1):
        raise SpikeverseError(
            f"unknown MinAtar environment '{env_id}' (games: {', '.join('MinAtar/' + g for g in GAMES)})"
        )
    return game, version


class MinAtarEnv(gym.Env):
    """One MinAtar game with the Gymnasium API.

    ``reset(seed=s)`` reseeds minatar's random state (game dynamics and sticky actions) and clears
    the remembered sticky action, so episodes started with the same seed and played with the same
    actions are identical. Episodes end only through the game itself (add a ``TimeLimit`` to cap).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        game: str,
        *,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        full_action_set: bool = False,
        render_mode: str | None = None,
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise SpikeverseError(f"MinAtar supports render_mode 'rgb_array' only, got {render_mode!r}")
        if not 0.0 <= sticky_action_prob <= 1.0:
            raise SpikeverseError(f"sticky_action_prob must be in [0, 1], got {sticky_action_prob}")
        self.game = game
        self.render_mode = render_mode
        self._game = minatar.Environment(
            env_name=game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping
        )
        self.action_set = list(range(self._game.num_actions())) if full_action_set else self._game.minimal_action_set()
        assert self.action_set[0] == 0, "MinAtar action 0 must be the no-op"
        h, w, c = self._game.state_shape()
        self.action_space = spaces.Discrete(len(self.action_set))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(c, h, w), dtype=np.float32)

    def _obs(self) -> np.ndarray:
        return np.ascontiguousarray(self._game.state().transpose(2, 0, 1), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new game; ``seed`` reseeds minatar's random state."""
        super().reset(seed=seed)
        if seed is not None:
            self._game.seed(seed)
        self._game.last_action = 0
        self._game.reset()
        return self._obs(), {}

    def step(self, action):
        """Play one action (an index into the action set); never truncates."""
        reward, terminal = self._game.act(self.action_set[int(action)])
        return self._obs(), float(reward), bool(terminal), False, {}

    def render(self) -> np.ndarray | None:
        """``(10, 10, 3)`` uint8 image, one colour per channel (black = empty), for ``rgb_array``."""
        if self.render_mode != "rgb_array":
            return None
        state = self._game.state()
        c = state.shape[-1]
        colours = 0.5 + 0.5 * np.cos(2 * np.pi * (np.arange(c)[:, None] / c + np.arange(3) / 3))
        palette = np.vstack([np.zeros(3), colours])
        index = np.where(state.any(-1), state.argmax(-1) + 1, 0)
        return (palette[index] * 255).astype(np.uint8)


def make_minatar(
    env_id: str,
    *,
    sticky_action_prob: float = 0.1,
    difficulty_ramping: bool = True,
    full_action_set: bool | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """MinAtar env with the paper's defaults (sticky actions 0.1, difficulty ramping on).

    The action set is the game's minimal one unless ``full_action_set=True``; when it is left
    ``None``, the ``-v0`` suffix selects all 6 actions as in minatar's own registration.
    """
    game, version = parse_minatar_id(env_id)
    if full_action_set is None:
        full_action_set = version == 0
    env: gym.Env = MinAtarEnv(
        game,
        sticky_action_prob=sticky_action_prob,
        difficulty_ramping=difficulty_ramping,
        full_action_set=full_action_set,
        render_mode=render_mode,
    )
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return env
