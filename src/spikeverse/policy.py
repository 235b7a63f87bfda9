"""The one interface every agent implements (see shared/DESIGN.md).

A policy maps a batch of observations to per-action values, ``q_values(obs) -> Tensor[B, A]``.
Evaluation, conversion rate, sweeps, energy and robustness only see this interface, so a DQN, a
converted SNN, a directly trained spiking Q-network or an evolved SNN are evaluated the same way.
Greedy action = argmax over the last dimension.

Measurement is not the policy's business: ``snn.cost.CostMonitor`` wraps any policy and counts
what its decisions cost (``reset_stats()``, ``diagnostics()``). A network whose calls cost
spikes, synaptic operations or MACs says so by being :class:`Metered`: it describes its last call.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Policy(Protocol):
    """``num_actions``, ``device`` and ``q_values``.

    ``q_values`` takes a batch of observations (a tensor whose first dimension is the batch,
    on ``device`` or CPU) and returns a float tensor ``[B, num_actions]``. Policies with
    internal state (spiking networks) reset it at the start of every call. ``device`` is where
    the policy wants its observations (CPU for tabular and evolved policies).
    """

    num_actions: int
    device: torch.device

    def q_values(self, obs: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Metered(Policy, Protocol):
    """A policy whose decisions cost spikes, synaptic operations or MACs (Q-networks, converted
    SNNs, DSQNs). ``call_cost()`` describes the last ``q_values`` call (an ``snn.cost.CallCost``:
    per layer and sample its spikes and synaptic operations, the steps simulated, the MACs);
    ``diagnostics()`` is that call's cost report ({} before the first call)."""

    def call_cost(self) -> Any: ...

    def diagnostics(self) -> dict[str, Any]: ...


def greedy_actions(policy: Policy, obs: Any, device: torch.device | str | None = None) -> np.ndarray:
    """argmax_a Q(obs, a) for a batch of observations, as a numpy int64 array."""
    dev = torch.device(device) if device is not None else policy.device
    x = torch.as_tensor(np.asarray(obs), device=dev)
    with torch.no_grad():
        q = policy.q_values(x)
    return q.argmax(dim=-1).cpu().numpy().astype(np.int64)
