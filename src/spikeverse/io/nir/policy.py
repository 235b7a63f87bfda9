"""A NIR graph as a :class:`~spikeverse.policy.Policy`: ``load(path)`` plays a .nir file.

For a batch of observations, ``NIRPolicy.q_values`` encodes the observations into the input of
each of T steps, simulates the graph for T steps (``io.nir.simulate.GraphNetwork``) and reads
the Output node's signal y_t out as Q-values, all as the graph metadata says
(``io.nir.info.AgentInfo``). Encodings:

- ``analog``: the observation is the input at every step (a constant current);
- ``signed_poisson``: x_max sign(x) [u < |x| / x_max] per step (``snn.encoders.signed_poisson``,
  a torch generator seeded once with ``seed``; params ``scale`` = x_max, ``seed``);
- ``gaussian_regular``: Gaussian receptive fields (``n`` per variable over [``low``, ``high``])
  firing regular trains at ``per_step`` spikes per step at a field's centre
  (``snn.encoders.regular_spikes``; the CartPole SNN's input);
- ``bins_periodic``: one-hot bins (``bins`` per variable over [``low``, ``high``]), the active
  input firing at every ``period``-th step from the first (``snn.encoders.periodic_spikes``;
  Mountain Car's input).

Readouts: ``sum`` sum_t y_t, ``mean`` (1/T) sum_t y_t, ``robust`` (V(0) + sum_t y_t) / (T V_thr)
(params ``v_init``, ``v_threshold``). The greedy action is the first maximum (``ties="first"``,
as argmax) or the last (``"last"``, with ``q_values="one_hot"``: that action one-hot).

A graph written by another tool has no such metadata: it is run with analog input and the
``sum`` readout, and needs ``timesteps`` (and ``dt``, default ``io.nir.nodes.DT``) from the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from spikeverse.errors import SpikeverseError
from spikeverse.io.nir.files import read_graph
from spikeverse.io.nir.info import AgentInfo
from spikeverse.io.nir.nodes import DT
from spikeverse.io.nir.simulate import GraphNetwork
from spikeverse.snn.encoders import bin_code, gaussian_code, periodic_spikes, regular_spikes, signed_poisson

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class NIRPolicy:
    """A NIR graph behind the Policy interface (see the module docstring). ``timesteps`` may be
    changed between calls; ``semantics`` is "spikeverse" (the export's own neurons, from their
    metadata) or "nir" (the graph alone: hard reset, start at rest, v > v_threshold)."""

    def __init__(self, graph: nir.NIRGraph, info: AgentInfo | None = None, *, semantics: str = "spikeverse",
                 timesteps: int | None = None, dt: float | None = None, device: torch.device | str = "cpu",
                 where: str = "graph"):
        self.info = info if info is not None else AgentInfo.from_metadata(graph.metadata)
        self.where, self.semantics = where, semantics
        self.dtype = _DTYPES[self.info.dtype]
        self.dt = float(dt if dt is not None else self.info.dt if self.info.dt is not None else DT)
        self.network = GraphNetwork(graph, dt=self.dt, semantics=semantics, dtype=self.dtype, device=device,
                                    where=where)
        out = self.network.output_shape
        if out is None or len(out) != 1:
            raise SpikeverseError(f"{where}: the Output node must be a vector of one value per action, got shape {out}")
        self.num_actions = int(out[0])
        T = timesteps if timesteps is not None else self.info.timesteps
        if T is None:
            raise SpikeverseError(f"{where}: the graph's metadata gives no timesteps per decision; give timesteps "
                                  "(--timesteps)")
        self.timesteps = T
        shape = self.info.observation_shape or self.network.input_shape
        self.observation_shape = tuple(int(s) for s in shape) if shape is not None else None
        self.device = torch.device(device)
        self._generator: torch.Generator | None = None
        self._check_encoding()

    @property
    def timesteps(self) -> int:
        return self._timesteps

    @timesteps.setter
    def timesteps(self, t: int) -> None:
        if int(t) != t or t < 1:
            raise SpikeverseError(f"timesteps must be an integer >= 1, got {t}")
        self._timesteps = int(t)

    def _param(self, key: str) -> Any:
        p = self.info.encoding_params
        if key not in p:
            raise SpikeverseError(f"{self.where}: the {self.info.encoding} encoding needs '{key}' in encoding_params")
        return p[key]

    def _check_encoding(self) -> None:
        enc = self.info.encoding
        needs = {"signed_poisson": ("scale", "seed"), "gaussian_regular": ("n", "low", "high", "per_step"),
                 "bins_periodic": ("bins", "low", "high", "period")}.get(enc, ())
        for key in needs:
            self._param(key)
        if self.info.readout == "robust":
            for key in ("v_init", "v_threshold"):
                if key not in self.info.readout_params:
                    raise SpikeverseError(f"{self.where}: the robust readout needs '{key}' in readout_params")

    def reset_generator(self) -> None:
        """Start the Poisson input's random stream again from its seed."""
        self._generator = None

    def encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """The graph's input for a batch of observations: ([B, ...], constant) or ([T, B, ...], False)."""
        enc, T = self.info.encoding, self.timesteps
        if enc == "analog":
            return obs.to(self.dtype), True
        if enc == "signed_poisson":
            if self._generator is None or self._generator.device != obs.device:
                self._generator = torch.Generator(device=obs.device).manual_seed(int(self._param("seed")))
            return signed_poisson(obs.to(self.dtype), T, float(self._param("scale")), self._generator), False
        low, high = self._param("low"), self._param("high")
        x = obs.to(torch.float32)
        if enc == "gaussian_regular":
            p = gaussian_code(x.to(self.dtype), int(self._param("n")), low, high) * float(self._param("per_step"))
            return regular_spikes(p, T), False
        code = bin_code(x, int(self._param("bins")), low, high).to(self.dtype)  # bins_periodic
        return periodic_spikes(code, T, int(self._param("period"))), False

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs).to(self.device)
        if self.observation_shape is not None and tuple(x.shape[1:]) != self.observation_shape:
            raise SpikeverseError(f"observations of shape {tuple(x.shape[1:])}, the graph takes "
                                  f"{self.observation_shape}")
        inp, constant = self.encode(x)
        return self.q_from_sums(self.network.run(inp, self.timesteps, constant).sum(0))

    def q_from_sums(self, total: torch.Tensor) -> torch.Tensor:
        """Q-values [B, A] from the Output's signal summed over the window [B, A] (the readout, then
        one-hot of the tie rule's action with ``q_values="one_hot"``): what any simulator's run of
        the graph gives as this agent's Q-values."""
        q = self._readout(total)
        if self.info.ties == "last":
            action = self.num_actions - 1 - q.flip(-1).argmax(-1)
        else:
            action = q.argmax(-1)
        if self.info.q_values == "one_hot":
            return torch.nn.functional.one_hot(action, self.num_actions).to(torch.float32)
        return q.to(torch.float32)

    def _readout(self, total: torch.Tensor) -> torch.Tensor:
        T = float(self.timesteps)
        if self.info.readout == "sum":
            return total
        if self.info.readout == "mean":
            return total / T
        p = self.info.readout_params
        return (float(p["v_init"]) + total) / (T * float(p["v_threshold"]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs)


def policy_from_graph(graph: nir.NIRGraph, **kwargs) -> NIRPolicy:
    """:class:`NIRPolicy` of an in-memory graph (keywords as NIRPolicy's)."""
    return NIRPolicy(graph, **kwargs)


def load(path: str | Path, *, semantics: str = "spikeverse", timesteps: int | None = None, dt: float | None = None,
         device: torch.device | str = "cpu") -> NIRPolicy:
    """The policy of a .nir file (ours or another tool's, made of the node types
    ``io.nir.simulate`` supports); ``timesteps`` and ``dt`` override the metadata's (a foreign
    graph needs ``timesteps``)."""
    graph = read_graph(path)
    return NIRPolicy(graph, semantics=semantics, timesteps=timesteps, dt=dt, device=device, where=str(path))
