"""Loading any saved agent as a :class:`~spikeverse.policy.Policy`, by checkpoint kind.

Each kind of agent registers a loader here; evaluation and the CLI only call ``load_policy``.
(Which trainer accepts which env is ``spikeverse.rl.env_check``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from spikeverse.convert.io import load_snn
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import read_checkpoint_meta
from spikeverse.models.cartpole_snn import load_cartpole_snn
from spikeverse.models.mountaincar_snn import load_mountaincar_snn
from spikeverse.policy import Policy
from spikeverse.rl.checkpoint import load_dqn
from spikeverse.rl.tabular import load_tabular


def _load_dqn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    return load_dqn(run_dir, "best", device)


def _load_tabular(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    return load_tabular(run_dir)


def _load_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    return load_snn(run_dir, device)


def _load_cartpole_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    return load_cartpole_snn(run_dir)


def _load_mountaincar_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    return load_mountaincar_snn(run_dir)


LOADERS: dict[str, Callable[[Path, torch.device], tuple[Policy, dict[str, Any]]]] = {
    "dqn": _load_dqn,
    "dsqn": _load_dqn,  # one loader: the spec says whether the hidden layers spike
    "tabular": _load_tabular,
    "snn": _load_snn,
    "cartpole_snn": _load_cartpole_snn,
    "mountaincar_snn": _load_mountaincar_snn,
}


def load_policy(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Policy, dict[str, Any]]:
    """The agent saved in ``run_dir`` and its checkpoint metadata (``meta['kind']`` in today's name,
    ``io.checkpoint.LEGACY_KINDS``; ``meta['env_id']``)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise SpikeverseError(f"no run directory at {run_dir}")
    meta = read_checkpoint_meta(run_dir)
    kind = meta.get("kind")
    if kind not in LOADERS:
        raise SpikeverseError(f"{run_dir}: unknown agent kind '{kind}'")
    return LOADERS[kind](run_dir, torch.device(device))
