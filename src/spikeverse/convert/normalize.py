"""Data-based parameter normalization (seed 001 eq. 16; Diehl et al. 2015, Rueckauer et al. 2017).

    w_l <- (lambda_{l-1} / lambda_l) w_l,    b_l <- b_l / lambda_l,    lambda_0 = 1

lambda_l is the p-th percentile of layer l's ReLU activations over frames collected by playing
the DQN itself (seed 001: up to 15,000 frames; epsilon 0.05; its greedy actions otherwise).
After scaling, the activations of layer l are a_l / lambda_l, so p% of them lie in [0, 1], the
range of a firing rate.

Choices (seed 001 leaves them open):
- Percentiles are over *all* values of the layer's ReLU output, zeros included, numpy's
  ``linear`` interpolation: what ``np.percentile(activations, p)`` gives in the BindsNET
  ``data_based_normalization`` the seed authors ran. ``p = 100`` is the maximum (Diehl 2015).
- The output layer spikes too (seed 001) and is normalized the same way, by the p-th percentile
  of its rectified outputs max(Q, 0), i.e. of its positive Q-values (``p = 100``: the largest Q
  seen over the collected frames). Its neurons then fire below one spike per step for p% of
  the Q-values, so the count and rate readouts resolve the greedy action without saturating;
  the robust readout (eq. 17) is unaffected by this scale except through the units of Q.
- A layer whose percentile is 0 (a dead or very sparse layer) falls back to its maximum
  activation, and to 1 if that is 0 too, so no weight is divided by zero.
- lambda_0 = 1: the observation goes in as it is (obs_scale folded into W_1, see graph.py).
  With analog input the first layer's current W_1 x + b_1 is exact for any x, so inputs outside
  [0, 1] (CartPole) need no rescaling; the observed range is reported.

Percentiles are exact and streamed: for a layer of N values (frames x units) the p-th percentile
needs only the top N - floor((N-1) p / 100) values, kept with ``torch.topk`` while playing
(for the Nature CNN at 15,000 frames and p = 99.9: 0.2M of 192M values).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from spikeverse.convert.graph import FlatQNetwork, synaptic_layers
from spikeverse.envs import make
from spikeverse.errors import SpikeverseError
from spikeverse.progress import Progress


def check_percentile(p: float) -> float:
    p = float(p)
    if not 0.0 < p <= 100.0:
        raise SpikeverseError(f"the percentile must be in (0, 100], got {p}")
    return p


class TopValues:
    """Exact streaming percentiles of N values (N known in advance): keeps the largest
    ``N - floor((N - 1) p_min / 100)`` values seen, enough for every percentile >= p_min."""

    def __init__(self, total: int, p_min: float):
        if total < 1:
            raise SpikeverseError("no activations to take a percentile of")
        self.total, self.p_min = int(total), check_percentile(p_min)
        self.k = self.total - math.floor((self.total - 1) * self.p_min / 100.0)
        self.seen = 0
        self.maximum = -math.inf
        self._kept = torch.empty(0)
        self._pending: list[torch.Tensor] = []
        self._pending_n = 0

    def add(self, values: torch.Tensor) -> None:
        v = values.detach().reshape(-1).to("cpu", torch.float32)
        if self.seen + v.numel() > self.total:
            raise SpikeverseError(f"more values ({self.seen + v.numel()}) than announced ({self.total})")
        self.seen += v.numel()
        if v.numel():
            self.maximum = max(self.maximum, float(v.max()))
        self._pending.append(v)
        self._pending_n += v.numel()
        if self._pending_n > max(4 * self.k, 1 << 20):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            allv = torch.cat([self._kept, *self._pending])
            self._pending, self._pending_n = [], 0
            self._kept = torch.topk(allv, min(self.k, allv.numel()), sorted=False).values if allv.numel() > self.k else allv

    def percentile(self, p: float) -> float:
        """Exactly ``np.percentile(all_values, p)`` (linear interpolation), for p >= p_min."""
        p = check_percentile(p)
        if p < self.p_min:
            raise SpikeverseError(f"percentile {p} is below the {self.p_min} these statistics were kept for")
        if self.seen != self.total:
            raise SpikeverseError(f"only {self.seen} of the announced {self.total} values were added")
        self._merge()
        top = torch.sort(self._kept.double(), descending=True).values  # top[j] = sorted[N-1-j]
        h = (self.total - 1) * p / 100.0
        lo = math.floor(h)
        v_lo = float(top[self.total - 1 - lo])
        if lo + 1 >= self.total:
            return v_lo
        v_hi = float(top[self.total - 2 - lo])
        return v_lo + (h - lo) * (v_hi - v_lo)


@dataclass
class ActivationStats:
    """Per-layer statistics of the rectified outputs of every synaptic layer (hidden ReLUs and
    max(Q, 0) at the output), collected over ``frames`` observations (plus ``extra_frames`` given
    besides the played ones)."""

    frames: int
    tops: list[TopValues]
    input_min: float = math.inf
    input_max: float = -math.inf
    episodes: int = 0
    returns: list[float] = field(default_factory=list)
    observations: torch.Tensor | None = None  # the frames themselves, when kept (QCFS fine-tune)
    extra_frames: int = 0  # frames given besides the ``frames`` played, covered by the statistics too

    def lambdas(self, percentile: float) -> list[float]:
        """lambda_1..lambda_L: the p-th percentile per layer (fallbacks: max, then 1)."""
        out = []
        for t in self.tops:
            lam = t.percentile(percentile)
            if not lam > 0:
                lam = t.maximum if t.maximum > 0 else 1.0
            out.append(float(lam))
        return out


class _Recorder:
    """Runs a FlatQNetwork layer by layer and streams each layer's rectified output."""

    def __init__(self, net: FlatQNetwork, frames: int, p_min: float):
        self.net = net
        self.mods = list(net.layers)
        self.syn_idx = [i for i, m in enumerate(self.mods) if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            units = []
            h = torch.zeros(1, *net.input_shape, device=net.device)
            for i, m in enumerate(self.mods):
                h = m(h)
                if i in self.syn_idx:
                    units.append(h[0].numel())
        self.stats = ActivationStats(frames, [TopValues(frames * u, p_min) for u in units])

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values of the batch; records the batch's activations."""
        x = obs.to(self.net.device, torch.float32)
        st = self.stats
        st.input_min = min(st.input_min, float(x.min()))
        st.input_max = max(st.input_max, float(x.max()))
        k = 0
        h = x
        for i, m in enumerate(self.mods):
            h = m(h)
            if i in self.syn_idx:
                st.tops[k].add(torch.relu(h))
                k += 1
        return h

    def feed(self, obs: torch.Tensor, batch_size: int = 1024) -> None:
        """Records the activations of observations [N, ...], ``batch_size`` at a time."""
        for i in range(0, obs.shape[0], batch_size):
            self(obs[i:i + batch_size])


def activation_stats(net: FlatQNetwork, observations: torch.Tensor, min_percentile: float = 99.0,
                     batch_size: int = 1024) -> ActivationStats:
    """Statistics of ``net``'s activations on given observations [N, ...] (raw, as the env gives
    them). ``min_percentile`` is the smallest percentile that will be asked for."""
    obs = torch.as_tensor(observations)
    rec = _Recorder(net, obs.shape[0], min_percentile)
    rec.feed(obs, batch_size)
    return rec.stats


def collect_activations(net: FlatQNetwork, env_id: str, *, frames: int = 15_000, epsilon: float = 0.05,
                        seed: int = 0, num_envs: int = 4, min_percentile: float = 99.0,
                        env_kwargs: dict | None = None, keep_observations: bool = False,
                        progress: bool | None = None, desc: str | None = None,
                        extra: torch.Tensor | None = None) -> ActivationStats:
    """Play ``env_id`` with ``net`` (its greedy action, a random one with probability
    ``epsilon``) for ``frames`` observations in total over ``num_envs`` environments stepped
    side by side, and keep the statistics of every layer's activations on those frames
    (seed 001: up to 15,000 frames). Deterministic given ``seed``. ``keep_observations`` also
    keeps the frames (in the environment's dtype) as ``stats.observations``. ``progress``: the
    frames counted on a bar (a terminal) or a line per ~10% (None), or silent (False); ``desc``
    names the phase (default "collect ENV"). ``extra``: observations [M, ...] given besides the
    played ones (e.g. from the DQN's training replay; ``convert.frames``) that the statistics cover
    too (``stats.extra_frames`` = M; ``stats.frames`` and the kept observations are the played ones)."""

    if frames < 1:
        raise SpikeverseError(f"--frames must be >= 1, got {frames}")
    if not 0.0 <= epsilon <= 1.0:
        raise SpikeverseError(f"epsilon must be in [0, 1], got {epsilon}")
    rng = np.random.default_rng(seed)
    n = max(1, min(num_envs, frames))
    envs = [make(env_id, training=False, **(env_kwargs or {})) for _ in range(n)]
    n_extra = 0 if extra is None else int(extra.shape[0])
    rec = _Recorder(net, frames + n_extra, min_percentile)
    rec.stats.frames = frames
    kept: list[np.ndarray] = []
    report = Progress(frames, desc or f"collect {env_id}", unit="frame", enabled=progress)
    try:
        obs = [env.reset(seed=int(rng.integers(2**31)))[0] for env in envs]
        ret = [0.0] * n
        done = 0
        while done < frames:
            take = min(n, frames - done)
            frames_now = np.stack(obs[:take])
            if keep_observations:
                kept.append(frames_now)
            batch = torch.as_tensor(frames_now)
            greedy = rec(batch).argmax(-1).cpu().numpy()
            for i in range(take):
                a = int(greedy[i])
                if rng.random() < epsilon:
                    a = int(rng.integers(net.num_actions))
                o, r, term, trunc, _ = envs[i].step(a)
                ret[i] += float(r)
                if term or trunc:
                    rec.stats.episodes += 1
                    rec.stats.returns.append(ret[i])
                    ret[i] = 0.0
                    o, _ = envs[i].reset(seed=int(rng.integers(2**31)))
                obs[i] = o
            done += take
            report.update(take, episodes=rec.stats.episodes)
    finally:
        report.close()
        for env in envs:
            env.close()
    if keep_observations:
        rec.stats.observations = torch.as_tensor(np.concatenate(kept))
    if extra is not None:
        rec.feed(torch.as_tensor(extra))
        rec.stats.extra_frames = n_extra
    return rec.stats


Scale = float | Sequence[float] | torch.Tensor


def _vector(lam: Scale, n: int, what: str) -> torch.Tensor:
    """A layer's scale as a [n] vector (a float: the same for every unit or channel)."""
    v = torch.as_tensor(lam, dtype=torch.float64).flatten()
    if v.numel() == 1:
        v = v.expand(n)
    if v.numel() != n:
        raise SpikeverseError(f"{what}: {v.numel()} scales for {n} units")
    if not bool(torch.all(v > 0)) or not bool(torch.all(torch.isfinite(v))):
        raise SpikeverseError(f"a normalization scale must be > 0 and finite, got {v.min().item():.4g}")
    return v


def normalize(net: FlatQNetwork, lambdas: Sequence[Scale]) -> FlatQNetwork:
    """A copy of ``net`` with w_l <- (lambda_{l-1}/lambda_l) w_l, b_l <- b_l/lambda_l (eq. 16),
    lambda_0 = 1. ``lambdas`` = [lambda_1, ..., lambda_L], one per synaptic layer: a float (layer-
    wise, seed 001) or one value per output unit / channel (channel-wise, as in the QCFS fine-tune:
    w_l[i, j] <- lambda_{l-1}[j] / lambda_l[i] w_l[i, j]; a channel's scale covers all its
    positions, through a Flatten too)."""
    out = copy.deepcopy(net)
    syn = synaptic_layers(out.layers)
    if len(lambdas) != len(syn):
        raise SpikeverseError(f"{len(lambdas)} scales for {len(syn)} layers")
    prev = None  # [channels] of the previous layer, None for the input (lambda_0 = 1)
    with torch.no_grad():
        for k, (m, lam) in enumerate(zip(syn, lambdas)):
            n_out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
            lam_v = _vector(lam, n_out, f"layer {k + 1}")
            w = m.weight.double()
            if prev is not None:
                n_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
                scale_in = prev.repeat_interleave(n_in // prev.numel()) if n_in != prev.numel() else prev
                w = w * scale_in.view(1, -1, *([1] * (w.dim() - 2)))
            w = w / lam_v.view(-1, *([1] * (w.dim() - 1)))
            m.weight.copy_(w.to(m.weight.dtype))
            m.bias.copy_((m.bias.double() / lam_v).to(m.bias.dtype))
            prev = lam_v
    return out
