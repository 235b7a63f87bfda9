"""Converted SNNs as run directories.

    SNN_DIR/checkpoint.safetensors   kind "snn": the normalized weights (``snn.<i>.weight``),
                                     the source ANN as converted (``ann.<i>.weight``: obs_scale and
                                     dueling folded, not normalized; the shadow policy for the
                                     conversion rate), and JSON metadata: layer layout, method,
                                     percentile, lambdas, timesteps, readout, threshold, the
                                     neuron/encoding/v_init/early-decision options, env_id,
                                     source, and how the activations were collected
    SNN_DIR/config.yaml              the same settings, readable

``<i>`` is the index of the Conv2d/Linear layer in the layout. Written atomically
(``io.checkpoint.save_checkpoint``); no pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikeverse.convert.graph import FlatQNetwork, layers_from_layout
from spikeverse.convert.spiking import SpikingQNetwork
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_checkpoint, load_module_state, read_checkpoint_meta, save_checkpoint
from spikeverse.io.rundir import CHECKPOINT, read_config, write_config

KIND = "snn"


def _weights(prefix: str, layers) -> dict[str, torch.Tensor]:
    out = {}
    for i, m in enumerate(layers):
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            out[f"{prefix}.{i}.weight"] = m.weight
            out[f"{prefix}.{i}.bias"] = m.bias
    return out


def check_snn_dir(snn_dir: str | Path) -> None:
    """An SNN may be (re)written to a new folder or over an SNN, never over another kind of run."""
    ckpt = Path(snn_dir) / CHECKPOINT
    config = read_config(snn_dir) or {}  # a corrupted config.yaml is refused, never overwritten
    kind = read_checkpoint_meta(ckpt).get("kind") if ckpt.exists() else config.get("agent")
    if kind not in (None, KIND):
        raise SpikeverseError(f"{snn_dir} holds a '{kind}' run; choose another --out")


def save_snn(snn_dir: str | Path, snn: SpikingQNetwork, ann: FlatQNetwork, meta: dict[str, Any]) -> Path:
    """Write ``snn`` (and the ANN it came from) to ``snn_dir``; ``meta`` adds env_id, method,
    percentile, source, ... Refuses to overwrite another kind of run."""
    snn_dir = Path(snn_dir)
    ckpt = snn_dir / CHECKPOINT
    check_snn_dir(snn_dir)
    if snn.layout != ann.layout():
        raise SpikeverseError("the SNN and the ANN have different layouts")
    full = dict(meta)
    full.update(kind=KIND, layout=snn.layout, input_shape=list(snn.input_shape), num_actions=snn.num_actions,
                timesteps=snn.timesteps, readout=snn.readout, v_th=snn.v_th,
                reset="hard" if snn.neuron == "lif" else "subtract", lambdas=snn.lambdas, snn_options=snn.options())
    syn = [m for m in snn.layers if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    snn_layers = list(ann.layers)  # same indices as the layout; swap in the SNN's weights
    it = iter(syn)
    snn_layers = [next(it) if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) else m for m in snn_layers]
    tensors = {**_weights("snn", snn_layers), **_weights("ann", ann.layers)}
    snn_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ckpt, tensors, full)
    cfg = {"agent": KIND, **{k: v for k, v in full.items() if k != "layout"}}
    write_config(snn_dir, cfg)
    return snn_dir


def _flat(tensors: dict[str, torch.Tensor], prefix: str, meta: dict, what: str) -> FlatQNetwork:
    try:
        net = FlatQNetwork(layers_from_layout(meta["layout"]), meta["input_shape"])
    except (KeyError, TypeError) as e:
        raise SpikeverseError(f"{what}: incomplete SNN metadata ({e})") from None
    state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    load_module_state(net.layers, state, what)
    return net.eval()


def load_snn(snn_dir: str | Path, device: torch.device | str = "cpu") -> tuple[SpikingQNetwork, dict[str, Any]]:
    """The converted SNN saved in ``snn_dir`` (with its saved timesteps and readout) and its metadata."""
    tensors, meta = load_checkpoint(Path(snn_dir), kind=KIND)
    normalized = _flat(tensors, "snn", meta, str(snn_dir))
    try:
        snn = SpikingQNetwork(normalized, meta["timesteps"], meta["readout"], meta.get("v_th", 1.0),
                              meta.get("lambdas"), **meta.get("snn_options", {}))
    except TypeError as e:
        raise SpikeverseError(f"{snn_dir}: unknown SNN options in the checkpoint ({e})") from None
    return snn.to(torch.device(device)), meta


def load_ann(snn_dir: str | Path, device: torch.device | str = "cpu") -> FlatQNetwork:
    """The ANN an SNN was converted from (same Q-values as the source network)."""
    tensors, meta = load_checkpoint(Path(snn_dir), kind=KIND)
    return _flat(tensors, "ann", meta, str(snn_dir)).to(torch.device(device))
