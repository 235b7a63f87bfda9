"""n-step returns (SPEC R-RL-NSTEP).

G_t = sum_{k<m} gamma^k r_{t+k} and bootstrap discount d_t = gamma^m, with m = n, or fewer when
the episode ends first, so the TD target is G_t + d_t max_a Q(s_{t+m}, a). The return is cut
at a terminal inside the window (d_t = 0); at a truncation (time limit) the shorter return
bootstraps from the final observation (d_t = gamma^m).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from spikeverse.errors import SpikeverseError


def _check(n: int, gamma: float) -> None:
    if n < 1:
        raise SpikeverseError(f"n-step must be >= 1, got {n}")
    if not 0.0 <= gamma <= 1.0:
        raise SpikeverseError(f"gamma must be in [0, 1], got {gamma}")


def nstep_targets(rewards, terminated, gamma: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference n-step targets for one trajectory s_0, r_0, ..., s_T (T = len(rewards)).

    For each t the window is steps t..t+m-1, m <= n, ending early at a terminal step or at T.
    Returns (G, discount, bootstrap_index): G_t = sum_{k<m} gamma^k r_{t+k}; d_t = 0 if step
    t+m-1 is terminal, else gamma^m; and t+m, the index of the bootstrap observation s_{t+m}
    (T = the final observation when the trajectory ends without a terminal, i.e. truncated).
    """
    _check(n, gamma)
    r = np.asarray(rewards, dtype=np.float64)
    term = np.asarray(terminated, dtype=bool)
    T = len(r)
    G, disc, boot = np.zeros(T), np.zeros(T), np.zeros(T, dtype=np.int64)
    for t in range(T):
        m = 0
        while m < n and t + m < T:
            G[t] += gamma**m * r[t + m]
            m += 1
            if term[t + m - 1]:
                break
        disc[t] = 0.0 if term[t + m - 1] else gamma**m
        boot[t] = t + m
    return G, disc, boot


class NStepAccumulator:
    """Turns per-step vector-env transitions into n-step ones, with one pending window per env.

    A window emits (s_t, a_t, G_t, s_{t+n}, gamma^n) once it holds n steps; when an env's
    episode ends all its pending windows are flushed with next_obs = the final observation and
    d = 0 (terminated) or gamma^m (truncated). With n = 1 this is (s, a, r, s', gamma (1 - term)).
    """

    def __init__(self, num_envs: int, n: int, gamma: float):
        _check(n, gamma)
        if num_envs < 1:
            raise SpikeverseError(f"num_envs must be >= 1, got {num_envs}")
        self.n, self.gamma = n, gamma
        self.powers = gamma ** np.arange(n)
        self.windows: list[deque[tuple[np.ndarray, int, float]]] = [deque() for _ in range(num_envs)]

    def push(self, obs, action, reward, next_obs, terminated, truncated) -> dict[str, np.ndarray] | None:
        """Add one vector step (leading dim num_envs; ``next_obs`` is the real next observation,
        the final one where an episode ended). Returns the n-step transitions it completed
        (keys obs, action, reward = G, next_obs, discount), or None."""
        out: list[tuple[np.ndarray, int, float, np.ndarray, float]] = []
        for i, window in enumerate(self.windows):
            window.append((np.array(obs[i]), int(action[i]), float(reward[i])))
            if terminated[i] or truncated[i]:
                while window:
                    out.append(self._pop(window, next_obs[i], 0.0 if terminated[i] else self.gamma ** len(window)))
            elif len(window) == self.n:
                out.append(self._pop(window, next_obs[i], self.gamma**self.n))
        if not out:
            return None
        o, a, g, no, d = zip(*out)
        return dict(obs=np.stack(o), action=np.array(a, dtype=np.int64), reward=np.array(g, dtype=np.float32),
                    next_obs=np.stack(no), discount=np.array(d, dtype=np.float32))

    def _pop(self, window: deque, next_obs: np.ndarray, discount: float) -> tuple:
        """Remove the oldest step s_t of ``window``; G_t = sum_k gamma^k r_{t+k} over the window."""
        g = float(np.dot(self.powers[: len(window)], [step[2] for step in window]))
        obs, action, _ = window.popleft()
        return obs, action, g, next_obs, discount
