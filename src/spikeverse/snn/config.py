"""The settings of directly trained spiking hidden layers (DSQN, seed 003; Liu et al. 2022).

One frozen dataclass carries them under one set of names, from the CLI (``spikeverse train
--agent dsqn --timesteps --surrogate --alpha --tau --v-th --reset --init-rate``) through the run's
config (``spiking.tau``, ...) to the checkpoint's network spec (``network.spiking.tau``, ...):

- ``timesteps``: T simulation steps per decision;
- ``surrogate``, ``alpha``: the surrogate gradient of the spike and its shape parameter
  (``snn.surrogates``);
- ``tau``, ``v_th``, ``reset``: the DSQN LIF neuron (seed 003 eq. 1-2), U_t = V_{t-1} +
  (I_t - V_{t-1}) / tau, S_t = H(U_t - v_th), hard (V_t = U_t (1 - S_t)) or soft
  (V_t = U_t - v_th S_t) reset (``snn.neurons.lif_dsqn_step``);
- ``init_rate``: training only, the data-dependent initialisation (``snn.init.calibrate_firing``)
  scales each spiking layer's synapses so that it fires at this mean rate (0: off).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spikeverse.errors import SpikeverseError, require_all
from spikeverse.snn.surrogates import surrogate as make_surrogate


@dataclass(frozen=True)
class SpikingConfig:
    """Spiking hidden layers: T, surrogate, LIF parameters, initial firing rate (validated)."""

    timesteps: int = 16
    surrogate: str = "atan"
    alpha: float = 2.0
    tau: float = 2.0
    v_th: float = 1.0
    reset: str = "hard"
    init_rate: float = 0.1

    def __post_init__(self) -> None:
        try:
            checks = [
                (int(self.timesteps) == self.timesteps and self.timesteps >= 1,
                 f"--timesteps must be >= 1, got {self.timesteps}"),
                (self.tau > 0, f"--tau (the LIF time constant) must be > 0, got {self.tau}"),
                (self.v_th > 0, f"--v-th (the LIF threshold) must be > 0, got {self.v_th}"),
                (self.alpha > 0, f"--alpha (the surrogate parameter) must be > 0, got {self.alpha}"),
                (self.reset in ("hard", "soft"), f"--reset must be hard or soft, got '{self.reset}'"),
                (0.0 <= self.init_rate < 1.0, f"--init-rate must be in [0, 1), got {self.init_rate}"),
            ]
        except TypeError:  # a string where a number belongs (a hand-edited config or checkpoint)
            raise SpikeverseError(f"bad spiking settings: {self.to_dict()}") from None
        require_all(checks)
        if not isinstance(self.surrogate, str):
            raise SpikeverseError(f"--surrogate takes a name, got {self.surrogate!r}")
        make_surrogate(self.surrogate, self.alpha)  # an unknown name: a one-line error

    def spike_fn(self):
        """The spike function: forward H(x), backward the surrogate derivative."""
        return make_surrogate(self.surrogate, self.alpha)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpikingConfig":
        """From ``to_dict`` output; missing keys take the defaults (checkpoints written before
        ``init_rate`` was part of the network spec lack it), unknown keys are refused."""
        if not isinstance(d, dict):
            raise SpikeverseError(f"spiking settings must be a mapping, got {d!r}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise SpikeverseError(f"unknown spiking setting(s): {', '.join(sorted(unknown))}")
        return cls(**d)
