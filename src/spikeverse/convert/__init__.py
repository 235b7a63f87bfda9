"""ANN-to-SNN conversion of trained Q-networks (SPEC R-CONV).

Modules, one concept each:
- ``graph``: any source network (spikeverse run, module, SB3/CleanRL state dict) -> a flat
  Conv2d/Linear/ReLU/Flatten stack (:class:`FlatQNetwork`), dueling head folded, obs_scale folded;
- ``normalize``: activations collected by playing, percentiles, eq. 16 weight/bias scaling;
- ``spiking``: :class:`SpikingQNetwork` (IF neurons, analog input, readouts incl. eq. 17),
  diagnostics, synaptic operations and energy;
- ``io``: converted SNNs as run directories (checkpoint kind ``"snn"``);
- ``frames``: frames the user supplies besides the DQN's play (``--frames-from FILE.npy``).

- ``methods``: naive (seed 000), tan (seed 001), fast (QCFS fine-tune + V_thr/2 + analog
  readout + early decision), and ``convert_ann`` choosing by name; ``qcfs``: the fine-tune;
- ``timesteps``: agreement against T on held-out frames, and ``--timesteps auto`` (the smallest
  T that keeps the DQN's decisions).

``convert_source`` loads a source, converts it and saves the SNN directory (what
``spikeverse convert`` calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikeverse.convert.frames import check_frames, file_sha256, load_frames
from spikeverse.convert.graph import (
    FlatQNetwork,
    env_io,
    fold_dueling,
    from_module,
    from_state_dict,
    load_state_dict_file,
)
from spikeverse.convert.io import check_snn_dir, load_ann, load_snn, save_snn
from spikeverse.convert.methods import (
    DEFAULT_READOUT,
    METHODS,
    check_options,
    convert_ann,
    convert_fast,
    convert_naive,
    convert_tan,
    layer_scales,
    method_options,
    options_for,
    refuse_stray_options,
)
from spikeverse.convert.normalize import (
    ActivationStats,
    activation_stats,
    check_percentile,
    collect_activations,
    normalize,
)
from spikeverse.convert.qcfs import QCFS, qcfs_finetune
from spikeverse.convert.spiking import (
    ENERGY_CONVENTION,
    READOUTS,
    SpikingQNetwork,
    agreement,
    check_readout,
    check_timesteps,
    energy_uj,
    readout,
)
from spikeverse.convert.timesteps import AUTO_FRAMES, AUTO_TARGET, T_GRID, auto_timesteps, check_auto
from spikeverse.errors import SpikeverseError
from spikeverse.rl.checkpoint import load_dqn

__all__ = [
    "ActivationStats", "DEFAULT_READOUT", "ENERGY_CONVENTION", "FlatQNetwork", "METHODS", "QCFS", "READOUTS",
    "check_options", "check_percentile", "check_readout", "check_timesteps", "method_options", "options_for",
    "refuse_stray_options",
    "SpikingQNetwork", "activation_stats", "agreement", "collect_activations", "convert_ann", "convert_fast",
    "convert_naive", "convert_source", "convert_tan", "energy_uj", "layer_scales", "qcfs_finetune",
    "env_io", "fold_dueling", "from_module", "from_state_dict", "load_ann", "load_snn", "load_source",
    "load_state_dict_file", "normalize", "readout", "save_snn", "AUTO_FRAMES", "AUTO_TARGET", "T_GRID",
    "auto_timesteps", "check_auto", "check_frames", "load_frames",
]


def load_source(run_dir: str | Path | None = None, *, state_dict: str | Path | None = None, env_id: str | None = None,
                device: str | torch.device = "cpu") -> tuple[FlatQNetwork, str, dict[str, Any]]:
    """The network to convert, its env id and a description of where it came from: a
    spikeverse DQN run directory (its best weights) or a state dict file plus ``env_id``."""
    if (run_dir is None) == (state_dict is None):
        raise SpikeverseError("give either a run directory or --state-dict FILE (with --env)")
    if run_dir is not None:
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
                   env_id: str | None = None, method: str = "tan", readout: str | None = None,
                   device: str | torch.device = "cpu", auto: dict[str, Any] | None = None,
                   frames_from: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Load a source network, convert it with ``method`` (options: timesteps, frames, epsilon,
    seed, and the method's own, e.g. percentile for tan and fast: ``convert.methods.method_options``;
    any other is refused before anything is loaded) and save the SNN run directory ``out``.
    ``auto`` (``{"target", "frames"}``, instead of ``timesteps``): T is the smallest of ``T_GRID``
    whose agreement with the DQN on held-out frames reaches the target (``convert.timesteps``).
    ``frames_from``: a .npy file of observations [N, ...] (e.g. the DQN's training replay) added to
    the frames the method plays (``extra_frames``; checked before any play), recorded with its
    path, N and sha256 as ``collection.frames_from``. Returns the summary written to the checkpoint
    metadata (plus ``snn_dir``)."""
    check_options(method, **({} if readout is None else {"readout": readout}), **options)  # before any work
    if auto is not None:
        if "timesteps" in options:
            raise SpikeverseError("give --timesteps N or --timesteps auto, not both")
        check_auto(auto["target"], auto["frames"])
    if frames_from is not None and options.get("extra_frames") is not None:
        raise SpikeverseError("give --frames-from FILE or extra_frames, not both")
    check_snn_dir(out)
    ann, env, source = load_source(run_dir, state_dict=state_dict, env_id=env_id, device=device)
    given = None
    if frames_from is not None:
        options["extra_frames"] = load_frames(frames_from, ann.input_shape)
        given = dict(path=str(Path(frames_from)), frames=len(options["extra_frames"]), sha256=file_sha256(frames_from))
    snn, info = convert_ann(ann, env, method=method, readout=readout, **options)
    if given is not None:
        info["collection"]["frames_from"] = given
    if auto is not None:
        info["timesteps_auto"] = auto_timesteps(snn, ann, env, target=auto["target"], frames=auto["frames"],
                                                epsilon=options.get("epsilon", 0.05), seed=options.get("seed", 0),
                                                progress=options.get("progress"))
    meta = dict(env_id=env, source=source, **info)
    save_snn(out, snn, ann, meta)
    return dict(snn_dir=str(Path(out)), **meta, timesteps=snn.timesteps, readout=snn.readout,
                layers=[dict(name=n, neurons=u) for n, u in zip(snn.layer_names, snn.neurons)])
