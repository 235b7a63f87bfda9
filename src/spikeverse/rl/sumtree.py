"""A sum-tree over priorities for proportional prioritized replay (Schaul et al. 2016).

Leaves hold priorities p_i and every internal node the sum of its two children, so the root is
sum_i p_i and the leaf whose cumulative-sum interval contains a value u is found in O(log N).
The heap layout (node 1 = root, children of k = 2k, 2k+1) is padded to a power of two with
zero leaves. All operations are vectorised over a batch.
"""

from __future__ import annotations

import numpy as np

from spikeverse.errors import SpikeverseError


class SumTree:
    """Binary sum-tree over ``capacity`` float64 priorities (all 0 initially)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise SpikeverseError(f"sum-tree capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.depth = (capacity - 1).bit_length()
        self.leaf0 = 1 << self.depth  # heap index of leaf 0
        self.nodes = np.zeros(2 * self.leaf0, dtype=np.float64)
        self.max = 0.0  # running max of the priorities ever written (as PER implementations keep)

    @property
    def total(self) -> float:
        """sum_i p_i (the root)."""
        return float(self.nodes[1])

    def __getitem__(self, indices) -> np.ndarray:
        """Leaf priorities p_i."""
        return self.nodes[self.leaf0 + np.asarray(indices, dtype=np.int64)]

    def update(self, indices, priorities) -> None:
        """Set p_i for a batch, then recompute every ancestor as left + right, level by level
        (no accumulated deltas, so no drift). With repeated indices the last write wins."""
        idx = np.asarray(indices, dtype=np.int64).ravel()
        pr = np.broadcast_to(np.asarray(priorities, dtype=np.float64).ravel(), idx.shape)
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise IndexError(f"sum-tree index out of range [0, {self.capacity})")
        if not np.all(np.isfinite(pr)) or pr.min() < 0:
            raise ValueError("priorities must be finite and >= 0")
        # keep the last occurrence of each index: numpy leaves duplicate fancy writes unordered
        rev_unique, rev_first = np.unique(idx[::-1], return_index=True)
        nodes = self.leaf0 + rev_unique
        self.nodes[nodes] = pr[::-1][rev_first]
        self.max = max(self.max, float(pr.max()))
        for _ in range(self.depth):
            nodes = np.unique(nodes >> 1)
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]

    def find_prefix_sum(self, values) -> np.ndarray:
        """For each u in [0, total): the leaf i with sum_{j<i} p_j <= u < sum_{j<=i} p_j.

        The descent never enters a zero-sum subtree, so while total > 0 it returns a leaf with
        p_i > 0 even when float rounding pushes u to or past the total.
        """
        u = np.array(values, dtype=np.float64, ndmin=1)
        node = np.ones(u.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            right = (u >= left_sum) & (self.nodes[left + 1] > 0)
            u = np.where(right, u - left_sum, u)
            node = left + right
        return node - self.leaf0
