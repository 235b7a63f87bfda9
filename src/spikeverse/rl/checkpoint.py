"""Loading a DQN or DSQN run's Q-network from its checkpoint, for evaluation, conversion and resume.

Kinds: ``dqn`` (an ANN Q-network) and ``dsqn`` (spiking hidden layers, ``spec.spiking`` set).
Checkpoints written before issue 12 are read in today's names (``load_q_checkpoint``): a DSQN
then had kind ``dqn`` with a spiking network spec, and its config the old keys
(``rl.config.upgrade_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikeverse.io.checkpoint import load_checkpoint, load_module_state, unprefixed
from spikeverse.rl.config import upgrade_config
from spikeverse.rl.networks import NetworkSpec, QNetwork

Q_KINDS = ("dqn", "dsqn")


def q_kind(spec: NetworkSpec) -> str:
    """The checkpoint kind of a Q-network: ``dsqn`` with spiking hidden layers, else ``dqn``."""
    return "dsqn" if spec.spiking is not None else "dqn"


def load_q_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a DQN or DSQN checkpoint, the metadata in today's names: an
    old DSQN (kind ``dqn``, a non-empty ``network.spiking``) reads as ``dsqn``; ``config`` as
    ``upgrade_config`` makes it."""
    tensors, meta = load_checkpoint(path, kind=Q_KINDS)
    network = meta.get("network")
    if meta["kind"] == "dqn" and isinstance(network, dict) and network.get("spiking"):
        meta["kind"] = "dsqn"
    if isinstance(meta.get("config"), dict):
        meta["config"] = upgrade_config(meta["config"])
    return tensors, meta


def load_dqn(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> tuple[QNetwork, dict]:
    """The Q-network of a DQN or DSQN run (``best`` weights when the run kept them, else the last),
    in eval mode, and the checkpoint metadata (with ``meta['weights']`` = which was loaded)."""
    path = Path(run_dir)
    tensors, meta = load_q_checkpoint(path)
    spec = NetworkSpec.from_dict(meta["network"])
    net = QNetwork(spec)
    prefix = "best" if which == "best" and any(k.startswith("best.") for k in tensors) else "online"
    load_module_state(net, unprefixed(prefix, tensors), str(path))
    meta["weights"] = prefix
    return net.to(torch.device(device)).eval(), meta
