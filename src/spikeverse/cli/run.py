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
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train, evaluate and report (resumes where a previous run stopped)."""
    from spikeverse.pipeline import run_pipeline

    res = run_pipeline(env, out, seed=seed, episodes=episodes, device=device, steps=steps, progress=progress)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        d = res["dqn"]
        typer.echo(f"{env}: DQN {d['mean']:.1f} +- {d['std']:.1f} over {d['n']} episodes; "
                   f"report in {Path(out or Path('runs') / env.replace('/', '-')) / 'report' / 'report.md'}")
