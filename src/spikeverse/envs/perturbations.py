"""Perturbations of what an agent observes (SPEC R-ANA-ROBUST; seed 000's robustness claim, after
Patel et al., Neural Networks 2019: occlusion on Breakout). The environment is unchanged; the
agent sees ``perturb(obs)`` at every step.

Kinds (``strength`` in the units given; 0 leaves the observation as it is):
- ``gaussian``: additive noise N(0, sigma^2), sigma = strength x the feature's scale: for vector
  observations each feature's standard deviation over the reference agent's play (``scale``), for
  images the full intensity range (high - low of the observation space); clipped to the valid range.
- ``saltpepper``: each input, with probability p = strength, set to its minimum or maximum (even
  odds); the valid range (``low``/``high``: the space's bounds, or the range seen in play where a
  bound is infinite).
- ``occlusion``: images [..., H, W]: ``bottom``/``top``: the k = strength last/first rows hidden
  (set to the low value; Patel et al. hide rows from the bottom); ``patch``: a k x k square at a
  random place. Vector observations: ``variable``: the variable of index strength set to 0.

Common random numbers: the draws for an observation depend on (seed, kind, mode, strength,
episode, step) alone (:func:`spikeverse.runtime.derive_seed`), so every agent evaluated at that
(kind, strength) sees the same noise on the same episode, and differences are the agents'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeverse.errors import SpikeverseError
from spikeverse.runtime import derive_seed

MODES = {"gaussian": ("additive",), "saltpepper": ("impulse",), "occlusion": ("bottom", "top", "patch", "variable")}


def parse_spec(spec: str, modes: dict[str, tuple[str, ...]] = MODES) -> tuple[str, str, list[float]]:
    """``KIND[-MODE]:STRENGTHS`` -> (kind, mode, strengths): strengths a comma-separated list
    (``gaussian:0,0.1,0.2``) or a range ``START:STOP:STEP`` with STOP included
    (``occlusion-bottom:0:9:1``); e.g. ``occlusion-variable:2`` masks variable 2. ``modes``: the
    kinds known and their modes (the first is the default), e.g. with ``analysis.adversarial``'s fgsm."""
    head, sep, rest = spec.partition(":")
    kind, _, mode = head.partition("-")
    if kind not in modes:
        raise SpikeverseError(f"unknown perturbation {kind!r} in {spec!r} (choose from {', '.join(modes)})")
    mode = mode or modes[kind][0]
    if mode not in modes[kind]:
        raise SpikeverseError(f"{kind} has no mode {mode!r} (choose from {', '.join(modes[kind])})")
    if not sep or not rest.strip():
        raise SpikeverseError(f"--perturb {spec!r} gives no strengths (e.g. {kind}:0,0.1,0.2)")
    try:
        parts = rest.split(":")
        if len(parts) == 3:
            start, stop, step = (float(v) for v in parts)
            if step <= 0 or stop < start:
                raise ValueError
            strengths = [round(start + i * step, 12) for i in range(int(np.floor((stop - start) / step + 1e-9)) + 1)]
        elif len(parts) == 1:
            strengths = [float(v) for v in rest.split(",") if v.strip()]
        else:
            raise ValueError
    except ValueError:
        raise SpikeverseError(f"--perturb {spec!r}: strengths are a list a,b,c or a range start:stop:step") from None
    if not strengths or any(not np.isfinite(s) or s < 0 for s in strengths):
        raise SpikeverseError(f"--perturb {spec!r}: strengths must be finite and >= 0")
    if kind == "saltpepper" and max(strengths) > 1:
        raise SpikeverseError(f"--perturb {spec!r}: a salt-and-pepper fraction is at most 1")
    if kind == "occlusion" and any(s != int(s) for s in strengths):
        raise SpikeverseError(f"--perturb {spec!r}: occlusion takes whole rows, patch sides or variable indices")
    return kind, mode, strengths


def valid_range(low, high, scale=None, what: str = "a perturbation") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, scale) as float64 arrays of one shape: the bounds must be finite; the scale
    (units of the strength) defaults to high - low."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise SpikeverseError(f"{what} needs finite low and high bounds of the observation's shape")
    scale = high - low if scale is None else np.broadcast_to(np.asarray(scale, np.float64), low.shape)
    return low, high, scale


@dataclass
class Perturbation:
    """One (kind, mode, strength) applied to batches of observations shaped like ``low``.

    ``low``/``high``: the valid range per input (finite); ``scale``: gaussian's per-feature
    scale (default high - low); ``dtype``: the observations' dtype, kept (uint8 rounded)."""

    kind: str
    mode: str
    strength: float
    low: np.ndarray
    high: np.ndarray
    scale: np.ndarray | None = None
    seed: int = 0
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    def __post_init__(self):
        if self.kind not in MODES or self.mode not in MODES[self.kind]:
            raise SpikeverseError(f"unknown perturbation {self.kind}-{self.mode}")
        self.low, self.high, self.scale = valid_range(self.low, self.high, self.scale)
        image = self.low.ndim >= 2
        if self.kind == "occlusion":
            if self.mode == "variable" and image:
                raise SpikeverseError("occlusion-variable masks a variable of a vector observation; images take "
                                      "bottom, top or patch")
            if self.mode != "variable" and not image:
                raise SpikeverseError(f"occlusion-{self.mode} hides rows of images; vector observations take "
                                      f"occlusion-variable:INDEX")
            limit = self.low.size if self.mode == "variable" else min(self.low.shape[-2:])
            if self.strength > (limit - 1 if self.mode == "variable" else limit):
                raise SpikeverseError(f"occlusion-{self.mode}:{self.strength:g} does not fit observations of shape "
                                      f"{self.low.shape}")

    def rng(self, episode: int, step: int) -> np.random.Generator:
        """The draws of one observation: (seed, kind, mode, strength, episode, step) alone."""
        return np.random.default_rng(derive_seed(self.seed, self.kind, self.mode, repr(float(self.strength)),
                                                 int(episode), int(step)))

    def __call__(self, obs: np.ndarray, episodes, steps) -> np.ndarray:
        """The perturbed batch [B, ...] (a new array) for rows of episode ``episodes[i]`` at step ``steps[i]``."""
        obs = np.asarray(obs)
        if self.strength == 0 and not (self.kind == "occlusion" and self.mode == "variable"):
            return obs.copy()
        x = obs.astype(np.float64)
        for i in range(x.shape[0]):
            x[i] = self._one(x[i], self.rng(episodes[i], steps[i]))
        if np.issubdtype(self.dtype, np.integer):
            x = np.rint(x)
        return x.astype(self.dtype)

    def _one(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.strength
        if self.kind == "gaussian":
            return np.clip(x + rng.normal(0.0, 1.0, x.shape) * (s * self.scale), self.low, self.high)
        if self.kind == "saltpepper":
            hit = rng.random(x.shape) < s
            salt = rng.random(x.shape) < 0.5
            return np.where(hit, np.where(salt, self.high, self.low), x)
        k = int(s)
        if self.mode == "variable":
            x.reshape(-1)[k] = 0.0
            return x
        rows = x.shape[-2]
        if self.mode == "bottom":
            x[..., rows - k:, :] = self.low[..., rows - k:, :]
        elif self.mode == "top":
            x[..., :k, :] = self.low[..., :k, :]
        elif k:  # patch: a k x k square at a random place
            r, c = int(rng.integers(rows - k + 1)), int(rng.integers(x.shape[-1] - k + 1))
            x[..., r:r + k, c:c + k] = self.low[..., r:r + k, c:c + k]
        return x
