"""Loading a DQN (or DSQN) run's Q-network from its checkpoint, for evaluation and conversion."""

from __future__ import annotations

from pathlib import Path

import torch

from spikeverse.io.checkpoint import load_checkpoint, load_module_state, unprefixed
from spikeverse.rl.networks import NetworkSpec, QNetwork


def load_dqn(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> tuple[QNetwork, dict]:
    """The Q-network of a DQN run (``best`` weights when the run kept them, else the last),
    in eval mode, and the checkpoint metadata (with ``meta['weights']`` = which was loaded)."""
    path = Path(run_dir)
    tensors, meta = load_checkpoint(path, kind="dqn")
    spec = NetworkSpec.from_dict(meta["network"])
    net = QNetwork(spec)
    prefix = "best" if which == "best" and any(k.startswith("best.") for k in tensors) else "online"
    load_module_state(net, unprefixed(prefix, tensors), str(path))
    meta["weights"] = prefix
    return net.to(torch.device(device)).eval(), meta
