"""Loading any saved agent as a :class:`~spikeverse.policy.Policy`, by checkpoint kind.

Each kind of agent registers a loader here; evaluation and the CLI only call ``load_policy``.
``check_agent_env`` refuses up front an agent that cannot work on an env's spaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import read_checkpoint_meta
from spikeverse.policy import Policy


def _load_dqn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    from spikeverse.rl.train import load_dqn

    return load_dqn(run_dir, "best", device)


def _load_tabular(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    from spikeverse.rl.tabular import load_tabular

    return load_tabular(run_dir)


def _load_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    from spikeverse.convert.io import load_snn

    return load_snn(run_dir, device)


def _load_cartpole_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    from spikeverse.evo.cartpole_snn import load_cartpole_snn

    return load_cartpole_snn(run_dir)


def _load_mountaincar_snn(run_dir: Path, device: torch.device) -> tuple[Policy, dict[str, Any]]:
    from spikeverse.evo.mountaincar import load_mountaincar_snn

    return load_mountaincar_snn(run_dir)


LOADERS: dict[str, Callable[[Path, torch.device], tuple[Policy, dict[str, Any]]]] = {
    "dqn": _load_dqn,
    "tabular": _load_tabular,
    "snn": _load_snn,
    "cartpole_snn": _load_cartpole_snn,
    "evo": _load_mountaincar_snn,
}


def load_policy(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Policy, dict[str, Any]]:
    """The agent saved in ``run_dir`` and its checkpoint metadata (``meta['kind']``, ``meta['env_id']``)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise SpikeverseError(f"no run directory at {run_dir}")
    meta = read_checkpoint_meta(run_dir)
    kind = meta.get("kind")
    if kind not in LOADERS:
        raise SpikeverseError(f"{run_dir}: unknown agent kind '{kind}'")
    return LOADERS[kind](run_dir, torch.device(device))


AGENTS = ("dqn", "dsqn", "tabular", "rstdp")


def check_agent_env(agent: str, env_id: str, observation_space=None, action_space=None) -> None:
    """Refuse, before any work, an agent that cannot work on ``env_id``'s spaces: DQN/DSQN need
    array (Box) observations and discrete actions, tabular Q-learning discrete observations and
    actions, R-STDP plays CartPole-v1 only. Without spaces given, the env is made to read them."""
    from gymnasium import spaces

    if agent not in AGENTS:
        raise SpikeverseError(f"unknown agent '{agent}' (choose {', '.join(AGENTS)})")
    if agent == "rstdp":
        from spikeverse.rl.rstdp import ENV_ID

        if env_id != ENV_ID:
            raise SpikeverseError(f"--agent rstdp plays {ENV_ID} only, got '{env_id}'")
        return
    if observation_space is None or action_space is None:
        from spikeverse.envs import make

        env = make(env_id)
        try:
            observation_space, action_space = env.observation_space, env.action_space
        finally:
            env.close()
    if agent == "tabular":
        ok_obs, want = isinstance(observation_space, spaces.Discrete), "discrete observations"
        hint = ("use --agent dqn" if isinstance(observation_space, spaces.Box)
                and isinstance(action_space, spaces.Discrete) else "choose another env")
    else:
        ok_obs, want = isinstance(observation_space, spaces.Box), "array (Box) observations"
        hint = "use --agent tabular" if isinstance(observation_space, spaces.Discrete) else "choose another env"
    if not ok_obs:
        raise SpikeverseError(f"--agent {agent} needs {want} and discrete actions; {env_id} has "
                              f"{_space_name(observation_space)} observations ({hint})")
    if not isinstance(action_space, spaces.Discrete):
        raise SpikeverseError(f"--agent {agent} needs discrete actions; {env_id} has "
                              f"{_space_name(action_space)} actions")


def _space_name(space) -> str:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    shape = getattr(space, "shape", None)
    return f"{type(space).__name__}{tuple(shape) if shape else ''}"
