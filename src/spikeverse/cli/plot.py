"""``spikeverse plot RUN_DIR``: draw a run's figures into RUN_DIR/figures/."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from spikeverse.cli.app import app


@app.command()
def plot(
    run_dir: Path = typer.Argument(..., help="A run directory (train, evolve)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figure paths as JSON."),
) -> None:
    """Draw a run's figures (learning curve; fitness, heatmaps and episode of an evolve run)."""
    from spikeverse.analysis.run_figures import run_figures

    paths = [str(p) for p in run_figures(run_dir)]
    typer.echo(json.dumps({"figures": paths}) if as_json else "\n".join(paths))
