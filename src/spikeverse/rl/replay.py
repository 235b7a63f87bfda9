"""Experience replay: uniform, and proportional prioritized on a sum-tree (SPEC R-RL-PER).

A transition is (s, a, R, s', d) with d the bootstrap discount including termination
(gamma^m, or 0 when the window hit a terminal), so the TD target is R + d V(s') for one-step
and n-step learning alike. Storage is preallocated numpy, adds and samples are batched, and
sampling uses a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from spikeverse.errors import SpikeverseError
from spikeverse.rl.sumtree import SumTree

_FIELDS = ("obs", "action", "reward", "next_obs", "discount")


class ReplayBuffer:
    """Uniform replay over the newest ``capacity`` transitions (a circular buffer).

    ``sample`` draws indices i.i.d. uniform over the stored transitions; weights are all 1.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype=np.float32, *, seed: int | None = None):
        if capacity < 1:
            raise SpikeverseError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs_shape = tuple(obs_shape)
        self.obs = np.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.discount = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next slot to write
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, discount) -> np.ndarray:
        """Store a batch of B transitions (leading dim B), overwriting the oldest; returns the
        slots written. If B > capacity only the last ``capacity`` are kept."""
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        action, reward, discount = np.ravel(action), np.ravel(reward), np.ravel(discount)
        b = len(action)
        if obs.shape != (b, *self.obs_shape) or next_obs.shape != obs.shape or not len(reward) == len(discount) == b:
            raise ValueError(f"add: expected {b} transitions with obs shape {self.obs_shape}, got obs {obs.shape}, "
                             f"next_obs {next_obs.shape}, reward {reward.shape}, discount {discount.shape}")
        skip = max(0, b - self.capacity)
        self.pos = (self.pos + skip) % self.capacity
        idx = (self.pos + np.arange(b - skip)) % self.capacity
        self.obs[idx], self.next_obs[idx] = obs[skip:], next_obs[skip:]
        self.action[idx], self.reward[idx], self.discount[idx] = action[skip:], reward[skip:], discount[skip:]
        self.pos = int((self.pos + b - skip) % self.capacity)
        self.size = min(self.size + b, self.capacity)
        return idx

    def _check_sample(self, batch_size: int) -> None:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def _gather(self, idx: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        return dict(obs=self.obs[idx], action=self.action[idx], reward=self.reward[idx], next_obs=self.next_obs[idx],
                    discount=self.discount[idx], indices=idx.astype(np.int64), weights=weights.astype(np.float32))

    def sample(self, batch_size: int, beta: float | None = None) -> dict[str, np.ndarray]:
        """i ~ Uniform{0..N-1} i.i.d.; keys obs, action, reward, next_obs, discount, indices,
        weights (all 1). ``beta`` is ignored."""
        self._check_sample(batch_size)
        idx = self.rng.integers(0, self.size, size=batch_size, dtype=np.int64)
        return self._gather(idx, np.ones(batch_size))

    def update_priorities(self, indices, td_errors) -> None:
        """No-op: uniform replay has no priorities."""

    def state_dict(self) -> dict:
        """The stored transitions (only the filled part) as numpy arrays, and ``pos``/``capacity``."""
        state = {name: getattr(self, name)[: self.size].copy() for name in _FIELDS}
        state.update(pos=self.pos, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (the sampling RNG is not part of it)."""
        if int(state["capacity"]) != self.capacity:
            raise SpikeverseError(f"replay state has capacity {state['capacity']}, buffer has {self.capacity}")
        size = len(state["action"])
        pos = int(state["pos"])
        if state["obs"].shape[1:] != self.obs_shape or size > self.capacity or not 0 <= pos < self.capacity:
            raise SpikeverseError(f"replay state does not fit this buffer (obs shape {self.obs_shape})")
        for name in _FIELDS:
            getattr(self, name)[:size] = state[name]
        self.size, self.pos = size, pos


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016).

    P(i) = p_i^alpha / sum_k p_k^alpha with p_i = |delta_i| + eps. New transitions get the
    largest priority written so far (1.0 initially). Sampling is stratified: [0, total) is cut
    into B equal segments and one u is drawn uniformly in each, i = leaf containing u.
    Importance weights w_i = (N P(i))^-beta / max_{j in batch} (N P(j))^-beta, normalised by the
    max over the sampled batch (as Dopamine / CleanRL do), N = current size.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype=np.float32, *, alpha: float = 0.5,
                 eps: float = 1e-6, seed: int | None = None):
        if alpha < 0:
            raise SpikeverseError(f"PER alpha must be >= 0, got {alpha}")
        if eps <= 0:
            raise SpikeverseError(f"PER eps must be > 0, got {eps}")
        super().__init__(capacity, obs_shape, obs_dtype, seed=seed)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(capacity)  # leaves hold p_i^alpha

    def add(self, obs, action, reward, next_obs, discount) -> np.ndarray:
        """Store a batch at priority max(1, max p^alpha written so far)."""
        idx = super().add(obs, action, reward, next_obs, discount)
        self.tree.update(idx, max(1.0, self.tree.max))
        return idx

    def sample(self, batch_size: int, beta: float | None = 0.4) -> dict[str, np.ndarray]:
        """Stratified proportional sample with weights (N P(i))^-beta / batch max (beta None = 0)."""
        self._check_sample(batch_size)
        beta = 0.0 if beta is None else beta
        if beta < 0:
            raise SpikeverseError(f"PER beta must be >= 0, got {beta}")
        total = self.tree.total
        u = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        idx = self.tree.find_prefix_sum(u)  # never a zero-priority leaf, so always idx < size
        w = (self.size * self.tree[idx] / total) ** -beta
        return self._gather(idx, w / w.max())

    def update_priorities(self, indices, td_errors) -> None:
        """p_i^alpha = (|delta_i| + eps)^alpha for the sampled indices."""
        td = np.abs(np.asarray(td_errors, dtype=np.float64))
        if not np.all(np.isfinite(td)):
            raise SpikeverseError("non-finite TD error in prioritized replay: training diverged; try a smaller --lr")
        self.tree.update(indices, (td + self.eps) ** self.alpha)

    def state_dict(self) -> dict:
        """As :meth:`ReplayBuffer.state_dict`, plus the leaf priorities p^alpha and their running max."""
        state = super().state_dict()
        state.update(priorities=self.tree[np.arange(self.size)], max_priority=self.tree.max)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree = SumTree(self.capacity)
        self.tree.update(np.arange(self.size), state["priorities"])
        self.tree.max = float(state["max_priority"])
