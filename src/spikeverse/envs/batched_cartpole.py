"""CartPole-v1 dynamics for a batch of independent episodes in numpy, to score many networks at
once (seed 002 sec. 2.3: the ES evaluates a population per generation; used by
``models.cartpole_snn``)."""

from __future__ import annotations

import math

import numpy as np


class CartPoleBatch:
    """B independent CartPole-v1 episodes in numpy: gymnasium's ``CartPoleEnv`` equations (Euler,
    tau 0.02 s, force 10 N), float64 state, float32 observations, terminated when |x| > 2.4 or
    |theta| > 12 degrees. ``starts`` [B, 4] are the initial states (gymnasium draws them from
    U(-0.05, 0.05)). Finished episodes keep their state and ``done`` flag."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    x_threshold, theta_threshold = 2.4, 12 * 2 * math.pi / 360

    def __init__(self, starts):
        self.state = np.array(starts, dtype=np.float64).reshape(-1, 4)
        self.done = np.zeros(len(self.state), dtype=bool)

    def obs(self) -> np.ndarray:
        return self.state.astype(np.float32)

    def step(self, actions) -> np.ndarray:
        """Advance the running episodes by their actions (0 left, 1 right); returns ``done``."""
        live = ~self.done
        x, x_dot, theta, theta_dot = self.state[live].T
        total_mass = self.masspole + self.masscart
        pml = self.masspole * self.length
        force = np.where(np.asarray(actions)[live] == 1, self.force_mag, -self.force_mag)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + pml * np.square(theta_dot) * sin) / total_mass
        thetaacc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(cos) / total_mass))
        xacc = temp - pml * thetaacc * cos / total_mass
        new = np.stack([x + self.tau * x_dot, x_dot + self.tau * xacc,
                        theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc], 1)
        self.state[live] = new
        self.done[live] = (np.abs(new[:, 0]) > self.x_threshold) | (np.abs(new[:, 2]) > self.theta_threshold)
        return self.done


def episode_starts(rng: np.random.Generator, n: int) -> np.ndarray:
    """n initial states [n, 4] ~ U(-0.05, 0.05), as CartPole-v1's reset draws them."""
    return rng.uniform(-0.05, 0.05, size=(n, 4))
