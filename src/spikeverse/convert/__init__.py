"""ANN-to-SNN conversion of trained Q-networks (SPEC R-CONV).

Modules, one concept each:
- ``graph``: any source network (spikeverse run, module, SB3/CleanRL state dict) -> a flat
  Conv2d/Linear/ReLU/Flatten stack (:class:`FlatQNetwork`), dueling head folded, obs_scale folded;
- ``normalize``: activations collected by playing, percentiles, eq. 16 weight/bias scaling;
- ``spiking``: :class:`SpikingQNetwork` (IF neurons, analog input, readouts incl. eq. 17),
  diagnostics, synaptic operations and energy;
- ``io``: converted SNNs as run directories (checkpoint kind ``"snn"``).

``convert_tan`` is seed 001's method (R-CONV-TAN); ``convert_source`` loads a source, converts
it and saves the SNN directory (what ``spikeverse convert`` calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikeverse.convert.graph import (
    FlatQNetwork, env_io, fold_dueling, from_module, from_state_dict, load_state_dict_file,
)
from spikeverse.convert.io import check_snn_dir, load_ann, load_snn, save_snn
from spikeverse.convert.normalize import (
    ActivationStats, activation_stats, check_percentile, collect_activations, normalize,
)
from spikeverse.convert.spiking import (
    ENERGY_CONVENTION, READOUTS, SpikingQNetwork, agreement, check_readout, check_timesteps, energy_uj, readout,
)
from spikeverse.errors import SpikeverseError

METHODS = ("tan",)

__all__ = [
    "ActivationStats", "ENERGY_CONVENTION", "FlatQNetwork", "METHODS", "READOUTS", "SpikingQNetwork",
    "activation_stats", "agreement", "collect_activations", "convert_source", "convert_tan", "energy_uj",
    "env_io", "fold_dueling", "from_module", "from_state_dict", "load_ann", "load_snn", "load_source",
    "load_state_dict_file", "normalize", "readout", "save_snn",
]


def convert_tan(ann: FlatQNetwork, env_id: str | None = None, *, percentile: float = 99.9, timesteps: int = 100,
                readout: str = "robust", frames: int = 15_000, epsilon: float = 0.05, seed: int = 0,
                stats: ActivationStats | None = None) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """Seed 001's conversion: play ``env_id`` with ``ann`` for ``frames`` frames (or use given
    ``stats``), lambda_l = the p-th percentile of each layer's activations, normalize (eq. 16),
    IF neurons with reset by subtraction, analog input. Returns the SNN and a summary."""
    check_percentile(percentile)
    check_timesteps(timesteps)
    check_readout(readout)
    if stats is None:
        if env_id is None:
            raise SpikeverseError("an env_id (to collect activations) or precomputed stats are needed")
        stats = collect_activations(ann, env_id, frames=frames, epsilon=epsilon, seed=seed, min_percentile=percentile)
    lambdas = stats.lambdas(percentile)
    snn = SpikingQNetwork(normalize(ann, lambdas), timesteps, readout, lambdas=lambdas).to(ann.device)
    lo, hi = stats.input_min, stats.input_max
    collection = dict(frames=stats.frames, epsilon=epsilon, seed=seed, episodes_finished=stats.episodes,
                      mean_return=(sum(stats.returns) / len(stats.returns)) if stats.returns else None,
                      input_range=[lo, hi], input_in_unit_interval=bool(lo >= 0.0 and hi <= 1.0))
    info = dict(method="tan", percentile=float(percentile), lambdas=lambdas, collection=collection,
                percentile_of="all rectified outputs per layer (zeros included); output layer: max(Q, 0)")
    return snn, info


def load_source(run_dir: str | Path | None = None, *, state_dict: str | Path | None = None, env_id: str | None = None,
                device: str | torch.device = "cpu") -> tuple[FlatQNetwork, str, dict[str, Any]]:
    """The network to convert, its env id and a description of where it came from: a
    spikeverse DQN run directory (its best weights) or a state dict file plus ``env_id``."""
    if (run_dir is None) == (state_dict is None):
        raise SpikeverseError("give either a run directory or --state-dict FILE (with --env)")
    if run_dir is not None:
        from spikeverse.rl.train import load_dqn

        if not Path(run_dir).exists():
            raise SpikeverseError(f"no run directory at {run_dir}")
        net, meta = load_dqn(run_dir, "best", device)
        if env_id is not None and env_id != meta["env_id"]:
            raise SpikeverseError(f"{run_dir} was trained on {meta['env_id']}, not {env_id}")
        flat = from_module(net)
        return flat, meta["env_id"], dict(kind="run", path=str(Path(run_dir)), weights=meta.get("weights"))
    if env_id is None:
        raise SpikeverseError("--state-dict needs --env ID (the environment the network was trained on)")
    shape, n_actions, scale = env_io(env_id)
    flat = from_state_dict(load_state_dict_file(state_dict), shape, n_actions, scale)
    return flat.to(torch.device(device)), env_id, dict(kind="state_dict", path=str(Path(state_dict)), obs_scale=scale)


def convert_source(out: str | Path, run_dir: str | Path | None = None, *, state_dict: str | Path | None = None,
                   env_id: str | None = None, method: str = "tan", percentile: float = 99.9, timesteps: int = 100,
                   readout: str = "robust", frames: int = 15_000, epsilon: float = 0.05, seed: int = 0,
                   device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a source network, convert it with ``method`` and save the SNN run directory ``out``.
    Returns the summary written to the checkpoint metadata (plus ``snn_dir``)."""
    if method not in METHODS:
        raise SpikeverseError(f"unknown or not yet implemented conversion method {method!r} "
                              f"(available: {', '.join(METHODS)})")
    check_snn_dir(out)
    ann, env, source = load_source(run_dir, state_dict=state_dict, env_id=env_id, device=device)
    snn, info = convert_tan(ann, env, percentile=percentile, timesteps=timesteps, readout=readout,
                            frames=frames, epsilon=epsilon, seed=seed)
    meta = dict(env_id=env, source=source, **info)
    save_snn(out, snn, ann, meta)
    return dict(snn_dir=str(Path(out)), **meta, timesteps=snn.timesteps, readout=snn.readout,
                layers=[dict(name=n, neurons=u) for n, u in zip(snn.layer_names, snn.neurons)])
