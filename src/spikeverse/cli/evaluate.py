"""``spikeverse evaluate``: the seed 001 evaluation protocol on a saved agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by spikeverse train/convert/evolve, or a .nir graph (spikeverse export, or another tool's)."),
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
    env: Optional[str] = typer.Option(None, "--env", help=".nir files: the environment (default: the one in the graph's metadata)."),
    semantics: Optional[str] = typer.Option(None, "--semantics", help=".nir files: spikeverse (the exported neurons' own reset and start, from the metadata; default) or nir (the graph alone: hard reset, start at rest, v > v_threshold)."),
) -> None:
    """Evaluate a trained agent: mean, std and per-episode full-game scores."""
    from spikeverse.agents import load_policy
    from spikeverse.analysis.evaluate import run_report
    from spikeverse.device import resolve_device

    dev = resolve_device(device)
    policy, meta = load_policy(run_dir, dev, env_id=env, semantics=semantics)
    report = run_report(run_dir, policy, meta, device=dev, timesteps=timesteps, readout=readout, episodes=episodes,
                        epsilon=epsilon, noop_max=noop_max, max_episode_steps=max_episode_steps, seed=seed,
                        num_envs=num_envs, progress=progress)
    out = {"run_dir": str(run_dir), "agent": _agent_name(policy, meta), **report}
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


def _agent_name(policy, meta: dict) -> str:
    return meta["kind"]  # loading names an old DSQN checkpoint (kind "dqn") "dsqn" (rl.checkpoint)
