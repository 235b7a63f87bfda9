"""``spikeverse run``: the main job on the embedded default (CartPole-v1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


@app.command()
def run(
    env: str = typer.Option("CartPole-v1", "--env", help="Environment id."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/ENV)."),
    seed: int = typer.Option(0, help="Random seed."),
    episodes: int = typer.Option(20, help="Evaluation episodes."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default per env)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    timesteps: int = typer.Option(100, help="SNN simulation steps per decision."),
    percentile: float = typer.Option(99.9, help="Normalization percentile (seed 001)."),
    frames: int = typer.Option(15_000, help="Frames played to collect activations for normalization."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train a DQN, convert it to a spiking network, evaluate both, report (resumes training)."""
    from spikeverse.pipeline import run_pipeline

    res = run_pipeline(env, out, seed=seed, episodes=episodes, device=device, steps=steps, progress=progress,
                       timesteps=timesteps, percentile=percentile, frames=frames)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        d, s = res["dqn"], res["snn"]
        typer.echo(f"{env}: DQN {d['mean']:.1f} +- {d['std']:.1f}, SNN (T={s['timesteps']}) {s['mean']:.1f} +- "
                   f"{s['std']:.1f}, conversion rate {s['conversion_rate']:.3f} over {d['n']} episodes; "
                   f"report in {Path(out or Path('runs') / env.replace('/', '-')) / 'report' / 'report.md'}")
