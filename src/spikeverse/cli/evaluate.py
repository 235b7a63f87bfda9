"""``spikeverse evaluate``: the seed 001 evaluation protocol on a saved agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Evaluate a trained agent: mean, std and per-episode full-game scores."""
    from spikeverse.agents import load_policy
    from spikeverse.device import resolve_device
    from spikeverse.rl.evaluation import evaluate as run_eval

    policy, meta = load_policy(run_dir, resolve_device(device))
    res = run_eval(policy, meta["env_id"], episodes=episodes, epsilon=epsilon, noop_max=noop_max,
                   max_episode_steps=max_episode_steps, seed=seed, num_envs=num_envs)
    out = {"run_dir": str(run_dir), "agent": meta["kind"], **res.to_dict()}
    if "weights" in meta:
        out["weights"] = meta["weights"]
    if as_json:
        typer.echo(json.dumps(out))
    else:
        typer.echo(f"{meta['env_id']}: {res.mean:.2f} +- {res.std:.2f} over {episodes} episodes "
                   f"(epsilon {epsilon}, cap {res.max_episode_steps} {res.cap_unit})")
