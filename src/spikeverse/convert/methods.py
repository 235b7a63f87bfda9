"""The conversion methods (SPEC R-CONV): one function each, and :func:`convert_ann` choosing by name.

- ``naive`` (seed 000, R-CONV-NAIVE): weights copied, synaptic layer k scaled by a user factor
  (seed: 10x, then 100x, i.e. 10x more per layer), LIF neurons, Poisson input, action = the
  output neuron with the most spikes.
- ``tan`` (seed 001, R-CONV-TAN): IF neurons with reset by subtraction, data-based p-th percentile
  normalization (eq. 16), analog input, robust readout (eq. 17).
- ``fast`` (beyond seed 001): a QCFS distillation fine-tune of the DQN with L levels and a
  threshold per unit/channel (``convert.qcfs``; ``levels=0`` skips it), normalization by the
  trained thresholds (channel-wise), every IF neuron starting at V_thr/2, the analog (membrane)
  readout, and optionally the early decision.

Every method returns (SpikingQNetwork, info); ``info`` is saved with the SNN. Each takes its own
keyword options only (:func:`method_options`); any other is refused with a one-line error naming
it, and :func:`check_options` checks names and values before any work. Each also takes
``extra_frames``, observations [N, ...] given besides the frames it plays (e.g. the DQN's training
replay, ``convert.frames``): its statistics cover both, and so does the fast method's fine-tune.
"""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable, Sequence

import torch

from spikeverse.convert.frames import check_frames
from spikeverse.convert.graph import FlatQNetwork, synaptic_layers
from spikeverse.convert.normalize import ActivationStats, check_percentile, collect_activations, normalize
from spikeverse.convert.qcfs import check_margin_scale, qcfs_finetune
from spikeverse.convert.spiking import SpikingQNetwork, check_readout, check_timesteps
from spikeverse.errors import SpikeverseError
from spikeverse.progress import announce
from spikeverse.runtime import FINETUNE_SEED_OFFSET

METHODS = ("naive", "tan", "fast")
DEFAULT_READOUT = {"naive": "count", "tan": "robust", "fast": "membrane"}
NAIVE_SCALES = (10.0, 100.0)


def _collection(stats: ActivationStats, epsilon: float, seed: int) -> dict[str, Any]:
    lo, hi = stats.input_min, stats.input_max
    out = dict(frames=stats.frames, epsilon=epsilon, seed=seed, episodes_finished=stats.episodes,
               mean_return=(sum(stats.returns) / len(stats.returns)) if stats.returns else None,
               input_range=[lo, hi], input_in_unit_interval=bool(lo >= 0.0 and hi <= 1.0))
    if stats.extra_frames:
        out["extra_frames"] = stats.extra_frames
    return out


def _stats(ann: FlatQNetwork, env_id: str | None, stats: ActivationStats | None, *, frames: int, epsilon: float,
           seed: int, percentile: float, keep_observations: bool = False, extra_frames: torch.Tensor | None = None,
           progress: bool | None = None) -> ActivationStats:
    if stats is not None and (not keep_observations or stats.observations is not None):
        if extra_frames is not None and stats.extra_frames != extra_frames.shape[0]:
            raise SpikeverseError(f"the given stats cover {stats.extra_frames} extra frames, not the "
                                  f"{extra_frames.shape[0]} of extra_frames (collect_activations(..., extra=...))")
        return stats
    if env_id is None:
        raise SpikeverseError("an env_id (to collect activations) or precomputed stats are needed")
    return collect_activations(ann, env_id, frames=frames, epsilon=epsilon, seed=seed,
                               min_percentile=min(percentile, 99.0), keep_observations=keep_observations,
                               progress=progress, extra=extra_frames)


def layer_scales(scales: Sequence[float], layers: int) -> list[float]:
    """Scale factor per synaptic layer: the given ones, then 10x more per further layer (seed 000:
    "scaled the weights by a factor of 10 at each successive layer")."""
    out = [float(s) for s in scales]
    if not out or any(not s > 0 for s in out):
        raise SpikeverseError(f"scale factors must be > 0, got {list(scales)}")
    while len(out) < layers:
        out.append(out[-1] * 10.0)
    return out[:layers]


def check_options(method: str, **options: Any) -> None:
    """Validate the options of a conversion ``method`` before any work (the CLI and the pipeline
    call it before training or collecting frames): a name the method does not take is refused
    (naming it), and so is an impossible value."""
    if method not in CONVERTERS:
        raise SpikeverseError(f"unknown conversion method {method!r} (choose from {', '.join(METHODS)})")
    takes = method_options(method)
    unknown = [k for k in options if k not in takes and k not in ("stats", "progress")]  # every method takes those two
    if unknown:
        raise SpikeverseError(f"option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                              f"{'do' if len(unknown) > 1 else 'does'} not apply to conversion method {method!r} "
                              f"(it takes {', '.join(takes)})")
    o = options
    if o.get("timesteps") is not None:
        check_timesteps(o["timesteps"])
    if o.get("readout") is not None:
        check_readout(o["readout"])
    if o.get("percentile") is not None:
        check_percentile(o["percentile"])
    checks = [
        ("frames", lambda v: int(v) == v and v >= 1, "--frames must be >= 1"),
        ("epsilon", lambda v: 0.0 <= v <= 1.0, "epsilon must be in [0, 1]"),
        ("seed", lambda v: int(v) == v and v >= 0, "--seed must be >= 0"),
        ("tau", lambda v: v > 0, "--tau must be > 0"),
        ("levels", lambda v: int(v) == v and v >= 0, "--levels must be >= 0 (0: no fine-tune)"),
        ("finetune_steps", lambda v: int(v) == v and v >= 1, "--finetune-steps must be >= 1"),
        ("finetune_cycles", lambda v: int(v) == v and v >= 1, "--finetune-cycles must be >= 1"),
        ("finetune_frames", lambda v: v is None or (int(v) == v and v >= 2), "--finetune-frames must be >= 2"),
        ("v_init", lambda v: 0.0 <= v < 1.0, "v_init must be in [0, 1) (a fraction of the threshold)"),
    ]
    for name, ok, message in checks:
        if name in o and not ok(o[name]):
            raise SpikeverseError(f"{message}, got {o[name]}")
    if o.get("finetune_epsilons") is not None:
        eps = list(o["finetune_epsilons"])
        if not eps or any(not 0.0 <= e <= 1.0 for e in eps):
            raise SpikeverseError(f"--finetune-epsilons takes epsilons in [0, 1], got {eps}")
    if "margin_scale" in o:
        check_margin_scale(o["margin_scale"])
    if "scales" in o:
        s = list(o["scales"])
        if not s or any(not x > 0 for x in s):
            raise SpikeverseError(f"scale factors must be > 0, got {s}")


def method_options(method: str) -> tuple[str, ...]:
    """The options conversion ``method`` takes (keywords of its function, beside the network,
    the env id, precomputed ``stats`` and ``progress``)."""
    params = inspect.signature(CONVERTERS[method]).parameters
    return tuple(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in ("stats", "progress"))


FINETUNE_OPTIONS = ("finetune_steps", "finetune_cycles", "finetune_frames", "mixed_levels", "channel_wise",
                    "finetune_epsilons", "margin_scale")  # idle at levels 0


def refuse_stray_options(methods: Sequence[str], options: dict[str, Any], chosen: str,
                         name: Callable[[str, Any], str] = lambda k, v: k) -> None:
    """A one-line error naming the given ``options`` that none of ``methods`` takes, or that are
    idle (the fine-tune's, with ``levels`` 0); ``name(option, value)`` is how the caller spells an
    option (the CLI: its flag), ``chosen`` how it spelled the methods. Unknown methods are left to
    :func:`check_options`."""
    known = [m for m in methods if m in CONVERTERS]
    stray = [name(k, v) for k, v in options.items() if known and not any(k in method_options(m) for m in known)]
    if stray:
        raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to {chosen}")
    idle = [name(k, v) for k, v in options.items() if k in FINETUNE_OPTIONS] if options.get("levels") == 0 else []
    if idle:
        raise SpikeverseError(f"{', '.join(idle)} {'does' if len(idle) == 1 else 'do'} not apply with --levels 0 "
                              f"(no fine-tune)")


def options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` (shared by several methods, e.g. the pipeline's) that ``method`` takes."""
    takes = method_options(method)
    return {k: v for k, v in options.items() if k in takes}


def _typed(fn):
    """Conversion functions refuse, with one line naming it, an option they do not take, and
    check ``extra_frames`` against the network's input shape (as float32: :func:`check_frames`)."""
    name = fn.__name__.removeprefix("convert_")

    @functools.wraps(fn)
    def wrapper(ann, env_id=None, **options):
        check_options(name, **options)
        if options.get("extra_frames") is not None:
            options["extra_frames"] = check_frames(options["extra_frames"], ann.input_shape)
        return fn(ann, env_id, **options)

    return wrapper


@_typed
def convert_naive(ann: FlatQNetwork, env_id: str | None = None, *, timesteps: int = 100, readout: str = "count",
                  scales: Sequence[float] = NAIVE_SCALES, tau: float = 10.0, frames: int = 2_000,
                  epsilon: float = 0.05, seed: int = 0, extra_frames: torch.Tensor | None = None,
                  stats: ActivationStats | None = None,
                  progress: bool | None = None) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """Seed 000's weight transfer: W_k, b_k <- s_k W_k, s_k b_k, LIF neurons (tau, hard reset),
    Poisson input scaled to the largest |input| seen while playing or in ``extra_frames`` (frames
    only for that range)."""
    check_timesteps(timesteps)
    check_readout(readout)
    stats = _stats(ann, env_id, stats, frames=frames, epsilon=epsilon, seed=seed, percentile=99.0,
                   extra_frames=extra_frames, progress=progress)
    s = layer_scales(scales, len(synaptic_layers(ann.layers)))
    scaled = copy.deepcopy(ann)
    with torch.no_grad():
        for m, k in zip(synaptic_layers(scaled.layers), s):
            m.weight.mul_(k)
            m.bias.mul_(k)
    x_max = max(abs(stats.input_min), abs(stats.input_max)) or 1.0
    snn = SpikingQNetwork(scaled, timesteps, readout, neuron="lif", tau=tau, encoding="poisson",
                          input_scale=x_max, seed=seed).to(ann.device)
    info = dict(method="naive", scales=s, tau=tau, collection=_collection(stats, epsilon, seed), percentile=None,
                lambdas=None)
    return snn, info


@_typed
def convert_tan(ann: FlatQNetwork, env_id: str | None = None, *, percentile: float = 99.9, timesteps: int = 100,
                readout: str = "robust", frames: int = 15_000, epsilon: float = 0.05, seed: int = 0,
                extra_frames: torch.Tensor | None = None, stats: ActivationStats | None = None,
                progress: bool | None = None) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """Seed 001's conversion: play ``env_id`` with ``ann`` for ``frames`` frames (or use given
    ``stats``), lambda_l = the p-th percentile of each layer's activations on those frames and
    ``extra_frames``, normalize (eq. 16), IF neurons with reset by subtraction, analog input.
    Returns the SNN and a summary."""
    check_percentile(percentile)
    check_timesteps(timesteps)
    check_readout(readout)
    stats = _stats(ann, env_id, stats, frames=frames, epsilon=epsilon, seed=seed, percentile=percentile,
                   extra_frames=extra_frames, progress=progress)
    lambdas = stats.lambdas(percentile)
    snn = SpikingQNetwork(normalize(ann, lambdas), timesteps, readout, lambdas=lambdas).to(ann.device)
    info = dict(method="tan", percentile=float(percentile), lambdas=lambdas,
                collection=_collection(stats, epsilon, seed),
                percentile_of="all rectified outputs per layer (zeros included); output layer: max(Q, 0)")
    return snn, info


FINETUNE_FRAMES = 300_000
FINETUNE_BYTES = 1 << 30


def default_finetune_frames(input_shape: Sequence[int]) -> int:
    """Frames for the QCFS fine-tune: 300,000 (MinAtar Breakout with 300,000 frames: held-out
    agreement 0.998 at T=32, benchmarks/results/conversion_MinAtar-Breakout.json; the smaller
    frame counts compared before are in no results file), fewer where they would take more than
    1 GiB as float32 (Atari: 1 GiB / (4 x 4 x 84 x 84 bytes), about 9,500)."""
    per_frame = 4 * int(torch.tensor(list(input_shape)).prod())
    return max(1_000, min(FINETUNE_FRAMES, FINETUNE_BYTES // per_frame))


def finetune_play(ann: FlatQNetwork, env_id: str, frames: int, epsilons: Sequence[float], seed: int,
                  progress: bool | None) -> torch.Tensor:
    """``frames`` observations of the DQN's play for the fine-tune, in equal parts (the first ones
    one larger where it does not divide) played at each of ``epsilons``; part i from episodes
    seeded by seed + FINETUNE_SEED_OFFSET + 100 i (never the calibration's, nor the held-out ones)."""
    parts = [frames // len(epsilons) + (i < frames % len(epsilons)) for i in range(len(epsilons))]
    return torch.cat([collect_activations(ann, env_id, frames=n, epsilon=e, seed=seed + FINETUNE_SEED_OFFSET + 100 * i,
                                          keep_observations=True, progress=progress,
                                          desc=f"collect {env_id} (fine-tune frames, epsilon {e:g})").observations
                      for i, (n, e) in enumerate(zip(parts, epsilons)) if n > 0])


def mixed_level_set(levels: int) -> list[int]:
    """L, L/2, L/4, ... down to 4 (or L itself if L <= 4): the fine-tune draws one per step, so
    the SNN agrees at short windows too (CartPole, L = 32: held-out agreement 0.980 at T = 4 and
    0.993 at T = 32, against 0.50 and 0.993 when trained at L = 32 only)."""
    out = [levels]
    while out[-1] // 2 >= 4 and out[-1] % 2 == 0:
        out.append(out[-1] // 2)
    return sorted(out)


@_typed
def convert_fast(ann: FlatQNetwork, env_id: str | None = None, *, percentile: float = 99.9, timesteps: int = 32,
                 readout: str = "membrane", levels: int = 32, finetune_steps: int = 50_000,
                 finetune_cycles: int = 1, channel_wise: bool = True,
                 mixed_levels: bool = True, finetune_frames: int | None = None,
                 finetune_epsilons: Sequence[float] | None = None, margin_scale: str = "std",
                 v_init: float = 0.5, early_decision: bool = False,
                 frames: int = 15_000, epsilon: float = 0.05, seed: int = 0, extra_frames: torch.Tensor | None = None,
                 stats: ActivationStats | None = None,
                 progress: bool | None = None) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """QCFS fine-tune (``levels`` L > 0; thresholds start at the p-th percentiles, one per
    unit/channel with ``channel_wise``; quantized at :func:`mixed_level_set` levels with
    ``mixed_levels``) on ``finetune_frames`` frames of the DQN's own play
    (default :func:`default_finetune_frames`; with ``finetune_epsilons``, equal parts played at
    each of those epsilons, e.g. 0.05, 0.3 and 1 for states off the DQN's own path), the
    cross-entropy's temperature set by ``margin_scale`` (:func:`convert.qcfs.qcfs_finetune`), for
    ``finetune_steps``, or with ``finetune_cycles`` > 1 in up to that many cycles of them while the
    validation agreement rises (early stopping),
    normalize by the trained thresholds, IF neurons starting at ``v_init`` x V_thr, analog readout.
    ``extra_frames`` join both the percentiles' frames and the fine-tune's (the fine-tune's own
    random train/validation/test split then mixes them with the played ones)."""
    check_percentile(percentile)
    check_timesteps(timesteps)
    check_readout(readout)
    if levels < 0:
        raise SpikeverseError(f"--levels must be >= 0 (0: no fine-tune), got {levels}")
    if not 0.0 <= v_init < 1.0:
        raise SpikeverseError(f"v_init must be in [0, 1) (a fraction of the threshold), got {v_init}")
    stats = _stats(ann, env_id, stats, frames=frames, epsilon=epsilon, seed=seed, percentile=percentile,
                   extra_frames=extra_frames, progress=progress)
    lambdas = stats.lambdas(percentile)
    source, finetune = ann, None
    if levels > 0:
        if finetune_frames is None:
            finetune_frames = default_finetune_frames(ann.input_shape)
        if finetune_frames < 3:  # train, validation and test frames
            raise SpikeverseError(f"--finetune-frames must be >= 3, got {finetune_frames}")
        obs = stats.observations
        if finetune_epsilons:
            if env_id is None:
                raise SpikeverseError("--finetune-epsilons needs an environment to play")
            obs = finetune_play(ann, env_id, finetune_frames, finetune_epsilons, seed, progress)
        elif obs is None or obs.shape[0] < finetune_frames:
            if env_id is None:
                if obs is None:
                    raise SpikeverseError("the QCFS fine-tune needs frames: an env_id or stats with observations")
            else:
                obs = finetune_play(ann, env_id, finetune_frames, [epsilon], seed, progress)
        train_levels = mixed_level_set(levels) if mixed_levels else None
        obs = obs[:finetune_frames]
        given = "" if extra_frames is None else f" + {extra_frames.shape[0]} given"
        upto = "" if finetune_cycles == 1 else f" (up to {finetune_cycles} cycles of them)"
        announce(f"QCFS fine-tune: L={levels}, {finetune_steps} steps{upto} on {obs.shape[0]} frames{given}", progress)
        if extra_frames is not None:
            obs = torch.cat([obs.to(torch.float32), extra_frames])
        ft = qcfs_finetune(ann, obs, lambdas[:-1], levels=levels, steps=finetune_steps, cycles=finetune_cycles,
                           train_levels=train_levels, margin_scale=margin_scale,
                           channel_wise=channel_wise, seed=seed, progress=progress)
        source, lambdas = ft.net, ft.lambdas + lambdas[-1:]
        finetune = dict(levels=levels, train_levels=train_levels, steps=ft.steps, cycles=ft.cycles,
                        max_cycles=finetune_cycles, frames=ft.frames, channel_wise=channel_wise,
                        epsilons=list(finetune_epsilons) if finetune_epsilons else None, margin_scale=margin_scale,
                        splits=ft.split_sizes, validation_agreement=ft.validation_agreement,
                        test_agreement_before=ft.test_before, test_agreement=ft.test_agreement)
    snn = SpikingQNetwork(normalize(source, lambdas), timesteps, readout, lambdas=lambdas, v_init=v_init,
                          early_decision=early_decision).to(ann.device)
    info = dict(method="fast", percentile=float(percentile), lambdas=lambdas, qcfs=finetune,
                collection=_collection(stats, epsilon, seed))
    return snn, info


CONVERTERS = {"naive": convert_naive, "tan": convert_tan, "fast": convert_fast}


def convert_ann(ann: FlatQNetwork, env_id: str | None = None, *, method: str = "tan", readout: str | None = None,
                **options: Any) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """Convert with ``method`` (naive, tan or fast); ``readout=None`` takes the method's own
    (naive: count, tan: robust, fast: membrane). An option the method does not take is refused
    (:func:`check_options`; :func:`method_options` lists what each takes)."""
    if method not in CONVERTERS:
        raise SpikeverseError(f"unknown conversion method {method!r} (choose from {', '.join(METHODS)})")
    return CONVERTERS[method](ann, env_id, readout=readout or DEFAULT_READOUT[method], **options)
