"""The one interface every agent implements (see shared/DESIGN.md).

A policy maps a batch of observations to per-action values, ``q_values(obs) -> Tensor[B, A]``.
Evaluation, conversion rate, sweeps, energy and robustness only see this interface, so a DQN, a
converted SNN, a directly trained spiking Q-network or an evolved SNN are evaluated the same way.
Greedy action = argmax over the last dimension.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Policy(Protocol):
    """Anything with ``num_actions`` and ``q_values``.

    ``q_values`` takes a batch of observations (a tensor whose first dimension is the batch,
    on ``policy.device`` or CPU) and returns a float tensor ``[B, num_actions]``. Policies with
    internal state (spiking networks) reset it at the start of every call. Optional: a
    ``diagnostics()`` method returning a dict of the last call's extra measurements (spike
    counts, synaptic operations, ...).
    """

    num_actions: int

    def q_values(self, obs: torch.Tensor) -> torch.Tensor: ...


def greedy_actions(policy: Policy, obs: Any, device: torch.device | str | None = None) -> np.ndarray:
    """argmax_a Q(obs, a) for a batch of observations, as a numpy int64 array."""
    dev = torch.device(device) if device is not None else getattr(policy, "device", torch.device("cpu"))
    x = torch.as_tensor(np.asarray(obs), device=dev)
    with torch.no_grad():
        q = policy.q_values(x)
    return q.argmax(dim=-1).cpu().numpy().astype(np.int64)
