"""``spikeverse surrogates``: every surrogate gradient's smooth step and derivative (seed 000 Figs. 20-21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


@app.command()
def surrogates(
    plot: Optional[Path] = typer.Option(None, help="Write the two-panel figure (functions, derivatives) to this PNG."),
    x_max: Optional[float] = typer.Option(None, help="--plot, --json: sample x = v - v_th over [-x_max, x_max].", show_default="3.0"),
    points: Optional[int] = typer.Option(None, help="--json: samples per curve.", show_default="61"),
    as_json: bool = typer.Option(False, "--json", help="Print names, parameters and sampled values as JSON."),
) -> None:
    """List the surrogate gradients (forward H(x), backward g'(x)) with their default parameters."""
    import numpy as np

    from spikeverse.analysis.coding_plots import plot_surrogates, surrogate_curves
    from spikeverse.errors import SpikeverseError

    if points is not None and not as_json:
        raise SpikeverseError("--points applies with --json only (the samples it prints)")
    if x_max is not None and not as_json and plot is None:
        raise SpikeverseError("--x-max applies with --plot or --json only")
    x_max, points = 3.0 if x_max is None else x_max, 61 if points is None else points
    if not x_max > 0 or points < 2:
        raise SpikeverseError("--x-max must be > 0 and --points >= 2")
    if plot is not None:
        plot_surrogates(plot, -x_max, x_max)
    x = np.linspace(-x_max, x_max, points)
    curves = surrogate_curves(x)
    if as_json:
        out = {"x": x.round(6).tolist(), "plot": str(plot) if plot else None, "surrogates": {
            name: {"param": c["param"], "value": c["value"], "formula": c["formula"], "source": c["source"],
                   "primitive": c["primitive"].round(6).tolist(), "derivative": c["derivative"].round(6).tolist()}
            for name, c in curves.items()}}
        typer.echo(json.dumps(out))
        return
    for name, c in curves.items():
        param = f"{c['param']}={c['value']:g}"
        typer.echo(f"{name:17s} {param:9s} g'(x) = {c['formula']:34s} {c['source']}")
    if plot is not None:
        typer.echo(f"figure written to {plot}")
