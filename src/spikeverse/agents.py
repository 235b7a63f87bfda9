"""Saved agents by checkpoint kind: loading one as a :class:`~spikeverse.policy.Policy`, and
exporting a spiking one as a NIR graph.

Each kind of agent registers a loader here; evaluation and the CLI only call ``load_policy``,
which also plays a ``.nir`` file (``io.nir.load``; kind ``nir``). (Which trainer accepts which
env is ``spikeverse.rl.env_check``.) The spiking kinds register a NIR exporter
(``convert.nir``, ``models.nir``); :func:`export_nir` picks it, measures on frames of the agent's
own play how the graph's two readings agree with the agent (spikeverse's semantics from the
metadata: the round trip; the graph alone under NIR's semantics: what another simulator runs),
records that in the metadata and writes the file atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import nir
import numpy as np
import torch

from spikeverse.convert.io import load_snn
from spikeverse.convert.nir import dsqn_graph, snn_graph
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import read_checkpoint_meta
from spikeverse.io.nir import AgentInfo, NIRPolicy, check_out_path, policy_from_graph, read_graph, write_graph
from spikeverse.models.cartpole_snn import load_cartpole_snn
from spikeverse.models.mountaincar_snn import load_mountaincar_snn
from spikeverse.models.nir import cartpole_graph, mountaincar_graph
from spikeverse.policy import Policy
from spikeverse.rl.checkpoint import load_dqn
from spikeverse.rl.evaluation import evaluate
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


def load_policy(run_dir: str | Path, device: torch.device | str = "cpu", *, env_id: str | None = None,
                semantics: str | None = None) -> tuple[Policy, dict[str, Any]]:
    """The agent saved in ``run_dir`` and its checkpoint metadata (``meta['kind']`` in today's name,
    ``io.checkpoint.LEGACY_KINDS``; ``meta['env_id']``). ``run_dir`` may be a .nir file
    (:func:`load_nir`; ``env_id`` and ``semantics`` apply to it only)."""
    run_dir = Path(run_dir)
    if run_dir.suffix == ".nir" and not run_dir.is_dir():
        return load_nir(run_dir, device, env_id=env_id, semantics=semantics or "spikeverse")
    for name, value in (("--env", env_id), ("--semantics", semantics)):
        if value is not None:
            raise SpikeverseError(f"{name} applies to .nir files only (a run directory knows its agent)")
    if not run_dir.exists():
        raise SpikeverseError(f"no run directory at {run_dir}")
    meta = read_checkpoint_meta(run_dir)
    kind = meta.get("kind")
    if kind not in LOADERS:
        raise SpikeverseError(f"{run_dir}: unknown agent kind '{kind}'")
    return LOADERS[kind](run_dir, torch.device(device))


def load_nir(path: str | Path, device: torch.device | str = "cpu", *, env_id: str | None = None,
             semantics: str = "spikeverse") -> tuple[NIRPolicy, dict[str, Any]]:
    """The policy of a .nir file (``io.nir.NIRPolicy``) and metadata in ``load_policy``'s form:
    kind ``nir``, ``env_id`` (the graph's, or ``env_id``; a different one is refused)."""
    graph = read_graph(path)
    info = AgentInfo.from_metadata(graph.metadata)
    if env_id is not None and info.env_id is not None and env_id != info.env_id:
        raise SpikeverseError(f"{path} was exported for {info.env_id}, not {env_id}")
    env = env_id or info.env_id
    if env is None:
        raise SpikeverseError(f"{path} names no environment in its metadata; give --env ID")
    policy = NIRPolicy(graph, info, semantics=semantics, device=device, where=str(path))
    return policy, {"kind": "nir", "env_id": env, "agent": info.agent, "semantics": semantics,
                    "producer": info.producer}


# ------------------------------------------------------------------------------ NIR export

NIR_EXPORTERS: dict[str, Callable[[Any, dict[str, Any]], tuple[nir.NIRGraph, AgentInfo]]] = {
    "snn": snn_graph,
    "dsqn": dsqn_graph,
    "cartpole_snn": cartpole_graph,  # the ES and the R-STDP network
    "mountaincar_snn": mountaincar_graph,
}
CHECK_FRAMES = 1_000
CHECK_EPISODES = 4
_NO_NIR = {"dqn": "a DQN is not a spiking network: convert it first (spikeverse convert) and export the SNN",
           "tabular": "a Q-table is not a network"}


def export_nir(run_dir: str | Path, out: str | Path, *, check_frames: int = CHECK_FRAMES,
               seed: int = 0) -> dict[str, Any]:
    """Write the agent of ``run_dir`` as a NIR graph to ``out`` (.nir) and return what was done:
    the graph's nodes, ``differs`` (what a simulator reading the graph alone computes differently:
    the export's warnings), ``runner`` (what the metadata holds), and with ``check_frames`` > 0
    ``checks``: on up to that many frames of the agent's own play (``CHECK_EPISODES`` episodes,
    epsilon 0.05, ``seed``), the fraction of frames where the graph under spikeverse's semantics
    takes the agent's action (the round trip) and its largest Q-value difference, and the fraction
    under NIR's semantics alone (hard reset, start at rest, v > V_thr)."""
    out = check_out_path(out)
    if int(check_frames) != check_frames or check_frames < 0:
        raise SpikeverseError(f"--check-frames must be an integer >= 0, got {check_frames}")
    policy, meta = load_policy(run_dir)
    kind = meta.get("kind")
    if kind not in NIR_EXPORTERS:
        why = _NO_NIR.get(kind, f"exports exist for {', '.join(NIR_EXPORTERS)}")
        raise SpikeverseError(f"{run_dir}: a '{kind}' agent has no NIR export ({why})")
    graph, info = NIR_EXPORTERS[kind](policy, meta)
    if check_frames:
        info.checks = check_export(policy, graph, info, frames=int(check_frames), seed=seed)
        graph.metadata = info.to_metadata()
    write_graph(out, graph)
    return dict(out=str(out), run_dir=str(run_dir), agent=kind, env_id=info.env_id, timesteps=info.timesteps,
                dt=info.dt, nodes={name: type(node).__name__ for name, node in graph.nodes.items()},
                differs=info.differs, runner=info.runner, checks=info.checks)


def own_play_frames(policy: Policy, env_id: str, frames: int, *, seed: int = 0) -> np.ndarray:
    """Up to ``frames`` observations of ``policy``'s own play: ``CHECK_EPISODES`` episodes of at
    most frames / CHECK_EPISODES steps under the evaluation protocol (epsilon 0.05)."""
    seen: list[np.ndarray] = []

    def keep(obs, episodes, decisions):
        seen.append(np.array(obs))
        return obs

    evaluate(policy, env_id, episodes=CHECK_EPISODES, max_episode_steps=math.ceil(frames / CHECK_EPISODES),
             seed=seed, num_envs=CHECK_EPISODES, observe=keep, progress=False)
    return np.concatenate(seen)[:frames]


def check_export(policy: Policy, graph: nir.NIRGraph, info: AgentInfo, *, frames: int,
                 seed: int = 0) -> dict[str, Any]:
    """Agreement of the exported graph with ``policy`` on frames of its own play (see
    :func:`export_nir`)."""
    obs = own_play_frames(policy, info.env_id, frames, seed=seed)
    same = policy_from_graph(graph, info=info, semantics="spikeverse")
    alone = policy_from_graph(graph, info=info, semantics="nir")
    for p in (policy, same, alone):
        if hasattr(p, "reset_generator"):  # Poisson input: the same random stream for all three
            p.reset_generator()
    q = {name: [] for name in ("agent", "spikeverse", "nir")}
    batch = max(1, min(512, 20_000_000 // max(1, int(np.prod(obs.shape[1:])) * int(info.timesteps))))
    with torch.no_grad():
        for i in range(0, len(obs), batch):
            x = torch.as_tensor(obs[i:i + batch])
            for name, p in (("agent", policy), ("spikeverse", same), ("nir", alone)):
                q[name].append(p.q_values(x.to(p.device)).float().cpu())
    q = {k: torch.cat(v) for k, v in q.items()}
    a = q["agent"].argmax(-1)
    return dict(frames=int(len(obs)), episodes=CHECK_EPISODES, epsilon=0.05, seed=int(seed),
                round_trip_agreement=float((q["spikeverse"].argmax(-1) == a).double().mean()),
                round_trip_max_abs_dq=float((q["spikeverse"] - q["agent"]).abs().max()),
                nir_semantics_agreement=float((q["nir"].argmax(-1) == a).double().mean()))
