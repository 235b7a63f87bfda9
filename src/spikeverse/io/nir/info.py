"""What a spikeverse NIR graph leaves to whoever runs it: the graph metadata spikeverse writes.

NIR's own nodes say what the network computes at each time step. How an agent is run around it
is not NIR's business, and spikeverse writes it into the graph metadata (NIR's docs: no backend
may rely on metadata; the graph alone must run):

- ``dt``: the step the graph was exported for (``io.nir.nodes.DT``), ``timesteps`` T per decision;
- ``encoding`` (+ ``encoding_params``): how an observation becomes the input of every step;
- ``readout`` (+ ``readout_params``): how the Output node's signal y_t over the window becomes
  Q-values: ``sum`` Q = sum_t y_t, ``mean`` Q = (1/T) sum_t y_t, ``robust``
  Q = (V(0) + sum_t y_t) / (T V_thr) (a converted SNN's robust readout, seed 001 eq. 17, of an
  output layer reset by subtraction); ``ties`` (``first`` or ``last`` maximal action) and
  ``q_values`` (``readout``, or ``one_hot`` of the chosen action);
- ``reset``: the reset of the agent's neurons, ``hard`` or ``subtract`` (per node: the node
  metadata of ``io.nir.nodes``);
- ``env_id``, ``agent`` (the checkpoint kind), ``observation_shape``, ``observation_scale`` (the
  factor the network multiplies raw observations by, e.g. 1/255 for uint8 frames, folded into
  the first layer's weights: the graph takes the env's raw observations), ``dtype`` of the
  simulation;
- ``differs``: what a simulator that reads only the graph computes differently from spikeverse
  (reset by subtraction, the initial membrane, the spike test); ``runner``: what the metadata
  holds that the graph does not (input, T, readout); ``checks``: agreement measured at export.

Metadata values are written as HDF5 scalars and strings; the structured ones (dicts, lists) as
JSON strings, so that any NIR reader sees strings and numbers only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from spikeverse.errors import SpikeverseError

PRODUCER = "spikeverse"
ENCODINGS = ("analog", "signed_poisson", "gaussian_regular", "bins_periodic")
READOUTS = ("sum", "mean", "robust")
TIES = ("first", "last")
Q_VALUES = ("readout", "one_hot")
DTYPES = ("float32", "float64")
_JSON = ("encoding_params", "readout_params", "observation_shape", "differs", "runner", "checks", "extra")


@dataclass
class AgentInfo:
    """The graph metadata of an exported agent (see the module docstring); a graph written by
    another tool reads as the defaults: analog input, ``sum`` readout, first maximum, float32."""

    timesteps: int | None = None
    dt: float | None = None
    encoding: str = "analog"
    encoding_params: dict[str, Any] = field(default_factory=dict)
    readout: str = "sum"
    readout_params: dict[str, Any] = field(default_factory=dict)
    ties: str = "first"
    q_values: str = "readout"
    dtype: str = "float32"
    reset: str | None = None
    env_id: str | None = None
    agent: str | None = None
    observation_shape: list[int] | None = None
    observation_scale: float | None = None
    differs: list[str] = field(default_factory=list)
    runner: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    producer: str | None = PRODUCER

    def __post_init__(self) -> None:
        for name, value, allowed in (("encoding", self.encoding, ENCODINGS), ("readout", self.readout, READOUTS),
                                     ("ties", self.ties, TIES), ("q_values", self.q_values, Q_VALUES),
                                     ("dtype", self.dtype, DTYPES), ("reset", self.reset, (None, "hard", "subtract"))):
            if value not in allowed:
                raise SpikeverseError(f"graph metadata {name}={value!r} is not one spikeverse runs "
                                      f"(choose from {', '.join(allowed)})")
        if self.ties == "last" and self.q_values != "one_hot":
            raise SpikeverseError("graph metadata ties='last' needs q_values='one_hot' (an argmax takes the first "
                                  "maximum)")
        if self.timesteps is not None and (int(self.timesteps) != self.timesteps or self.timesteps < 1):
            raise SpikeverseError(f"graph metadata timesteps={self.timesteps!r} must be an integer >= 1")
        if self.dt is not None and not (np.isfinite(self.dt) and self.dt > 0):
            raise SpikeverseError(f"graph metadata dt={self.dt!r} must be > 0")

    def to_metadata(self) -> dict[str, Any]:
        """Flat metadata for ``nir.NIRGraph``: numbers and strings, JSON for the structured fields;
        unset fields are left out."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if v is None:
                continue
            out[k] = json.dumps(v) if k in _JSON else v
        return out

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> "AgentInfo":
        """The info in a graph's metadata (as ``nir.read`` gives it: numpy scalars, bytes or
        str); keys spikeverse does not know are ignored, a malformed value is refused."""
        md = {k: _plain(v) for k, v in (metadata or {}).items()}
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for k, v in md.items():
            if k not in known:
                continue
            if k in _JSON:
                try:
                    v = json.loads(v) if isinstance(v, str) else v
                except ValueError:
                    raise SpikeverseError(f"graph metadata {k} is not valid JSON: {str(v)[:80]!r}") from None
            kwargs[k] = v
        if md.get("producer") != PRODUCER:  # another tool's graph: none of our runner fields apply
            kwargs = {k: v for k, v in kwargs.items() if k in ("timesteps", "dt", "env_id")}
            kwargs["producer"] = md.get("producer")
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise SpikeverseError(f"malformed graph metadata ({e})") from None


def _plain(v: Any) -> Any:
    """A metadata value as plain Python: bytes -> str, numpy scalars and arrays -> numbers, lists."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return v.item() if v.ndim == 0 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v
