"""Evaluating an agent with its measurements (SPEC R-RL-EVAL, R-ANA-ENERGY): one function for
every caller (``spikeverse evaluate``, the main job, the sweep, benchmarks).

:func:`evaluate_agent` plays the seed 001 protocol (``rl.evaluation.evaluate``) with the agent
wrapped in a ``snn.cost.CostMonitor``, so the cost per decision (spikes, synaptic operations,
MACs, energy) is counted over exactly the decisions played. With a shadow policy (a converted
SNN's source ANN) it also gives the conversion rate CR = agreeing / all greedy actions on the
agent's own observations (seed 001 eq. 18), the shadow's own scores on the same protocol and
seeds, and Welch's t-test of the agent's scores against the shadow's
(``analysis.statistics.compare``).

:func:`run_report` is what ``spikeverse evaluate`` prints for a saved agent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spikeverse.analysis.statistics import compare
from spikeverse.convert.io import load_ann
from spikeverse.convert.spiking import SpikingQNetwork
from spikeverse.errors import SpikeverseError
from spikeverse.policy import Policy
from spikeverse.rl.evaluation import EvalResult, evaluate
from spikeverse.snn.cost import CostMonitor

# the cost per decision that every agent's evaluation reports (``snn.cost.cost_report``)
COST_FIELDS = ("timesteps", "mean_timesteps_per_decision", "spikes_per_decision", "firing_rate", "layers",
               "synops_per_decision", "macs_per_decision", "energy_uJ_per_decision", "ann_macs_per_decision",
               "ann_energy_uJ_per_decision", "energy_convention")


@dataclass
class AgentEvaluation:
    """``result``: the agent's play (with ``conversion_rate`` when a shadow was given); ``cost``:
    its cost report per decision ({} for a policy that reports none: tabular, evolved);
    ``shadow``: the shadow's own play on the same protocol and seeds; ``comparison``: Welch's test
    of the agent's scores against the shadow's (None without a shadow play)."""

    result: EvalResult
    cost: dict[str, Any]
    shadow: EvalResult | None = None
    comparison: dict[str, Any] | None = None

    def cost_fields(self) -> dict[str, Any]:
        return {k: self.cost[k] for k in COST_FIELDS if k in self.cost}


def evaluate_agent(policy: Policy, env_id: str, *, shadow: Policy | None = None,
                   shadow_result: EvalResult | None = None, play_shadow: bool = True,
                   desc: str | None = None, shadow_desc: str | None = None, **protocol) -> AgentEvaluation:
    """Play ``policy`` on ``env_id`` under the protocol (``rl.evaluation.evaluate``'s keywords:
    episodes, epsilon, noop_max, max_episode_steps, seed, num_envs, env_kwargs, progress) and
    count its cost. With ``shadow``: the conversion rate against it, then the shadow's own play
    on the same protocol (unless ``shadow_result`` already holds it, or ``play_shadow`` is
    False) and the Welch test. The agent is played first, then the shadow."""
    monitor = CostMonitor(policy)
    res = evaluate(monitor, env_id, shadow=shadow, desc=desc, **protocol)
    if shadow is not None and shadow_result is None and play_shadow:
        shadow_result = evaluate(shadow, env_id, desc=shadow_desc, **protocol)
    comparison = compare(shadow_result.scores, res.scores) if shadow_result is not None else None
    return AgentEvaluation(res, monitor.diagnostics(), shadow_result, comparison)


def set_timesteps(policy: Policy, timesteps: int, what: str = "--timesteps") -> None:
    """Play a spiking agent (converted SNN, DSQN; inside a cost monitor too) at ``timesteps``
    steps per decision; any other agent is refused, naming ``what`` asked for it."""
    net = policy
    while isinstance(net, CostMonitor):
        net = net.policy
    if getattr(net, "timesteps", None) is None:
        raise SpikeverseError(f"{what} applies to spiking agents only (converted SNNs and DSQN runs)")
    net.timesteps = timesteps


def run_report(run_dir: str | Path, policy: Policy, meta: dict[str, Any], *, device: torch.device | str = "cpu",
               timesteps: int | None = None, readout: str | None = None, **protocol) -> dict[str, Any]:
    """What ``spikeverse evaluate`` reports for the agent loaded from ``run_dir`` (``policy``,
    ``meta``: ``agents.load_policy``'s): the protocol's fields and scores, the cost per decision;
    a converted SNN also its conversion rate against its source ANN (loaded from ``run_dir``),
    the ANN's scores and the Welch test. ``timesteps`` (spiking agents) and ``readout``
    (converted SNNs) override the saved settings on the loaded network; a DSQN's saved spec is
    left as it is (``QNetwork.timesteps``)."""
    if meta["kind"] == "snn":
        return _snn_report(run_dir, policy, meta, device, timesteps, readout, protocol)
    if readout is not None:
        raise SpikeverseError("--readout applies to converted SNNs only")
    if timesteps is not None:
        set_timesteps(policy, timesteps)
    ev = evaluate_agent(policy, meta["env_id"], **protocol)
    out = ev.result.to_dict()
    if "weights" in meta:
        out["weights"] = meta["weights"]
    out.update(ev.cost_fields())
    return out


def _snn_report(run_dir: str | Path, snn: SpikingQNetwork, meta: dict[str, Any], device, timesteps: int | None,
                readout: str | None, protocol: dict) -> dict[str, Any]:
    """A converted SNN: its scores and conversion rate (the source ANN in the shadow, seed 001
    eq. 18), its cost per decision, and the ANN on the same protocol."""
    if timesteps is not None:
        set_timesteps(snn, timesteps)
    if readout is not None:
        snn.readout = readout
    env_id = meta["env_id"]
    ev = evaluate_agent(snn, env_id, shadow=load_ann(run_dir, device), desc=f"evaluate SNN {env_id}",
                        shadow_desc=f"evaluate ANN {env_id}", **protocol)
    test = ev.comparison
    out = ev.result.to_dict()
    out.update(
        method=meta.get("method"), percentile=meta.get("percentile"), source=meta.get("source"),
        readout=snn.readout, early_decision=snn.early_decision, **ev.cost_fields(),
        ann_mean=ev.shadow.mean, ann_std=ev.shadow.std, ann_scores=ev.shadow.scores,
        p_value=None if math.isnan(test["p_value"]) else test["p_value"], snn_over_ann=test["ratio"],
    )
    return out
