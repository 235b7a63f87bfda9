"""``spikeverse evaluate``: the seed 001 evaluation protocol on a saved agent."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by spikeverse train/convert."),
    episodes: int = typer.Option(10, help="Number of episodes (seed 001 tables: 50)."),
    epsilon: float = typer.Option(0.05, help="Epsilon of the epsilon-greedy evaluation policy."),
    noop_max: int = typer.Option(30, help="Up to this many random no-ops at the start (games with a no-op)."),
    max_episode_steps: Optional[int] = typer.Option(None, help="Episode cap in agent steps (default: 18000 for Atari, the env's own limit otherwise)."),
    seed: int = typer.Option(0, help="Evaluation seed."),
    num_envs: int = typer.Option(8, help="Environments stepped side by side."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal; a line per ~10% otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    timesteps: Optional[int] = typer.Option(None, help="Spiking agents (converted SNN, DSQN): simulation steps T per decision (default: as saved)."),
    readout: Optional[str] = typer.Option(None, help="Converted SNNs: count, rate, robust or membrane (default: as saved)."),
) -> None:
    """Evaluate a trained agent: mean, std and per-episode full-game scores."""
    from spikeverse.agents import load_policy
    from spikeverse.device import resolve_device
    from spikeverse.rl.evaluation import evaluate as run_eval

    dev = resolve_device(device)
    policy, meta = load_policy(run_dir, dev)
    protocol = dict(episodes=episodes, epsilon=epsilon, noop_max=noop_max, max_episode_steps=max_episode_steps,
                    seed=seed, num_envs=num_envs, progress=progress)
    if meta["kind"] == "snn":
        out = _evaluate_snn(run_dir, policy, meta, protocol, timesteps, readout, dev)
    else:
        if readout is not None:
            raise SpikeverseError("--readout applies to converted SNNs only")
        if timesteps is not None:
            _set_dsqn_timesteps(policy, timesteps)
        if hasattr(policy, "reset_stats"):
            policy.reset_stats()
        res = run_eval(policy, meta["env_id"], **protocol)
        out = {"run_dir": str(run_dir), "agent": _agent_name(policy, meta), **res.to_dict()}
        if "weights" in meta:
            out["weights"] = meta["weights"]
        if hasattr(policy, "diagnostics"):
            out.update(_cost_fields(policy.diagnostics(since_reset=True)))
    if as_json:
        typer.echo(json.dumps(out))
        return
    cap = out["max_episode_steps"]
    typer.echo(f"{meta['env_id']}: {out['mean']:.2f} +- {out['std']:.2f} over {episodes} episodes "
               f"(epsilon {epsilon}, cap {cap} {out['cap_unit']})")
    if meta["kind"] == "snn":
        typer.echo(f"ANN: {out['ann_mean']:.2f} +- {out['ann_std']:.2f} (Welch p = {out['p_value']}); "
                   f"conversion rate {out['conversion_rate']:.3f} at T={out['timesteps']} ({out['readout']})")
    if "energy_uJ_per_decision" in out:
        rates = ", ".join(f"{l['name']} {l['firing_rate']:.3f}" for l in out["layers"] if l["firing_rate"] is not None)
        typer.echo(f"per decision: {out['synops_per_decision']:.4g} synops + {out['macs_per_decision']:.4g} MACs = "
                   f"{out['energy_uJ_per_decision']:.4g} uJ (the ANN: {out['ann_macs_per_decision']:.4g} MACs, "
                   f"{out['ann_energy_uJ_per_decision']:.4g} uJ; {out['energy_convention']})"
                   + (f"; firing rates {rates}" if rates else ""))


COST_FIELDS = ("timesteps", "mean_timesteps_per_decision", "spikes_per_decision", "firing_rate", "layers",
               "synops_per_decision", "macs_per_decision", "energy_uJ_per_decision", "ann_macs_per_decision",
               "ann_energy_uJ_per_decision", "energy_convention")


def _cost_fields(diag: dict) -> dict:
    """The cost per decision that every agent's evaluation reports (``snn.cost.cost_report``)."""
    return {k: diag[k] for k in COST_FIELDS if k in diag}


def _agent_name(policy, meta: dict) -> str:
    return meta["kind"]  # loading names an old DSQN checkpoint (kind "dqn") "dsqn" (rl.checkpoint)


def _set_dsqn_timesteps(policy, timesteps: int) -> None:
    from dataclasses import replace

    from spikeverse.convert.spiking import check_timesteps

    spec = getattr(policy, "spec", None)
    if spec is None or not spec.spiking:
        raise SpikeverseError("--timesteps applies to spiking agents only (converted SNNs and DSQN runs)")
    spec.spiking = replace(spec.spiking, timesteps=check_timesteps(timesteps))


def _evaluate_snn(run_dir: Path, snn, meta: dict, protocol: dict, timesteps: Optional[int], readout: Optional[str],
                  device) -> dict:
    """A converted SNN: its scores and conversion rate (the source ANN in the shadow, seed 001
    eq. 18), synaptic operations and energy per decision, and the ANN on the same protocol."""
    from spikeverse.analysis.statistics import compare
    from spikeverse.convert.io import load_ann
    from spikeverse.rl.evaluation import evaluate as run_eval

    if timesteps is not None:
        snn.timesteps = timesteps
    if readout is not None:
        snn.readout = readout
    ann = load_ann(run_dir, device)
    snn.reset_stats()
    res = run_eval(snn, meta["env_id"], shadow=ann, desc=f"evaluate SNN {meta['env_id']}", **protocol)
    diag = snn.diagnostics(since_reset=True)
    ann_res = run_eval(ann, meta["env_id"], desc=f"evaluate ANN {meta['env_id']}", **protocol)
    test = compare(ann_res.scores, res.scores)
    out = {"run_dir": str(run_dir), "agent": "snn", **res.to_dict()}
    out.update(
        method=meta.get("method"), percentile=meta.get("percentile"), source=meta.get("source"),
        readout=snn.readout, early_decision=snn.early_decision, **_cost_fields(diag),
        ann_mean=ann_res.mean, ann_std=ann_res.std, ann_scores=ann_res.scores,
        p_value=None if math.isnan(test["p_value"]) else test["p_value"], snn_over_ann=test["ratio"],
    )
    return out
