"""``spikeverse export``: a spiking agent as a NIR graph, for other simulators and hardware."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError

FORMATS = ("nir",)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A spiking agent's run directory: a converted SNN (spikeverse convert), a DSQN, an ES / R-STDP CartPole or a GA Mountain Car run."),
    fmt: str = typer.Option("nir", "--format", help="Export format: nir (the Neuromorphic Intermediate Representation, HDF5)."),
    out: Path = typer.Option(..., "--out", help="The .nir file to write (atomically; an existing one is replaced)."),
    check_frames: int = typer.Option(1000, "--check-frames", help="Frames of the agent's own play on which the graph's agreement with the agent is measured and stored in its metadata (0: no check)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the check's episodes (default 0).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Export a spiking agent as a NIR graph (what NIR cannot express: warnings, and graph metadata)."""
    from spikeverse.agents import export_nir

    if fmt not in FORMATS:
        raise SpikeverseError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    if seed is not None and check_frames == 0:
        raise SpikeverseError("--seed applies to the check only; it does nothing with --check-frames 0")
    report = export_nir(run_dir, out, check_frames=check_frames, seed=0 if seed is None else seed)
    for line in report["differs"]:
        typer.echo(f"warning: {line}", err=True)
    checks = report["checks"]
    if checks:
        typer.echo(f"warning: on {checks['frames']} frames of the agent's own play, a re-simulation of the graph "
                   f"alone under NIR's semantics takes the agent's action on {checks['nir_semantics_agreement']:.3f} "
                   f"(spikeverse's semantics, the round trip: {checks['round_trip_agreement']:.3f})", err=True)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{report['out']}: {report['agent']} agent for {report['env_id']} as {len(report['nodes'])} NIR nodes "
               f"({', '.join(report['nodes'].values())}), T = {report['timesteps']}, dt = {report['dt']:g}")
    for line in report["runner"]:
        typer.echo(f"  metadata: {line}")
