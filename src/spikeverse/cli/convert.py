"""``spikeverse convert``: turn a trained DQN into a spiking network (SPEC R-CONV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError


def default_snn_dir(run_dir: Optional[Path], state_dict: Optional[Path], method: str, percentile: float) -> Path:
    """RUN_DIR/snn-tan-p99.9 for a run; FILE's folder/FILESTEM-snn-tan-p99.9 for a state dict."""
    tag = f"snn-{method}-p{percentile:g}"
    if run_dir is not None:
        return run_dir / tag
    if state_dict is None:
        raise SpikeverseError("give a RUN_DIR or --state-dict FILE (with --env)")
    return state_dict.parent / f"{state_dict.stem}-{tag}"


@app.command()
def convert(
    run_dir: Optional[Path] = typer.Argument(None, help="A DQN run directory (spikeverse train); or use --state-dict."),
    state_dict: Optional[Path] = typer.Option(None, "--state-dict", help="A PyTorch state dict (.pth, e.g. SB3 policy.pth or a CleanRL model) instead of RUN_DIR; needs --env."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment id of the state dict's network."),
    method: str = typer.Option("tan", help="Conversion method: tan (seed 001: IF, reset by subtraction, percentile normalization)."),
    percentile: float = typer.Option(99.9, help="p of the p-th percentile normalization (100 = max)."),
    timesteps: int = typer.Option(100, help="Simulation steps T per decision (seed 001 tables: 500)."),
    readout: str = typer.Option("robust", help="Output readout: count, rate, robust (eq. 17) or membrane."),
    frames: int = typer.Option(15_000, help="Frames played by the DQN to collect activations (seed 001: up to 15,000)."),
    epsilon: float = typer.Option(0.05, help="Epsilon while collecting frames."),
    seed: int = typer.Option(0, help="Seed of the collection episodes."),
    out: Optional[Path] = typer.Option(None, help="SNN directory (default RUN_DIR/snn-METHOD-pP)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Convert a DQN to a spiking Q-network and save it as a run directory (evaluate it with spikeverse evaluate)."""
    from spikeverse.convert import convert_source
    from spikeverse.device import resolve_device

    target = out or default_snn_dir(run_dir, state_dict, method, percentile)
    summary = convert_source(target, run_dir, state_dict=state_dict, env_id=env, method=method,
                             percentile=percentile, timesteps=timesteps, readout=readout, frames=frames,
                             epsilon=epsilon, seed=seed, device=resolve_device(device))
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        lams = ", ".join(f"{x:.4g}" for x in summary["lambdas"])
        typer.echo(f"{summary['env_id']}: converted ({summary['method']}, p={summary['percentile']:g}, "
                   f"T={summary['timesteps']}, {summary['readout']} readout; lambdas {lams}) -> {summary['snn_dir']}")
