"""``spikeverse robustness``: score and agreement of saved agents under perturbed input (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from spikeverse.cli.app import app


@app.command()
def robustness(
    agents: List[str] = typer.Argument(..., help="Saved agents (any that spikeverse evaluate plays), in one env; DIR@T plays a spiking agent at T steps per decision."),
    env: str = typer.Option(..., "--env", help="Environment id; every agent must play it."),
    perturb: List[str] = typer.Option(..., "--perturb", help="KIND[-MODE]:STRENGTHS, repeatable: gaussian:0,0.1,0.2 (sigma / feature std; images: / intensity range), saltpepper:0:0.2:0.05 (fraction), occlusion-bottom|top|patch:K (image rows or patch side), occlusion-variable:I (vector variable I set to 0), fgsm-transfer|white-box:EPS (the reference's or the agent's own gradient)."),
    episodes: int = typer.Option(50, help="Episodes per cell (agent x perturbation x strength)."),
    seed: int = typer.Option(0, help="Evaluation seed: the same episodes and perturbation draws for every agent."),
    epsilon: float = typer.Option(0.05, help="Epsilon of the evaluation protocol (seed 001)."),
    reference: Optional[Path] = typer.Option(None, help="The agent whose clean-frame actions give the agreement (default: an SNN's own ANN, else the first DQN)."),
    out: Path = typer.Option(..., help="Run directory (rerunning resumes: finished cells are kept)."),
    workers: int = typer.Option(1, help="Cells played in parallel."),
    num_envs: int = typer.Option(8, help="Environments stepped side by side in a cell (the scores do not depend on it)."),
    executor: str = typer.Option("local", help="local (processes) or ray."),
    plot: bool = typer.Option(False, "--plot/--no-plot", help="Write the figures to OUT/figures/."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json."),
) -> None:
    """Play every agent under every perturbation and strength: score (95% CI), relative score, agreement, energy."""
    from spikeverse.study.robustness import run_robustness

    res = run_robustness(agents, env, perturb, out, episodes=episodes, seed=seed, epsilon=epsilon,
                         reference=reference, workers=workers, executor=executor, plot=plot, num_envs=num_envs,
                         progress=progress)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        typer.echo(f"{env}: {len(res['rows'])} cells; report in {out / 'report.md'}")
