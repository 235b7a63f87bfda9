"""``spikeverse sweep``: score and conversion rate of the converted SNN over T x p x readout
(seed 001 Fig. 1, Tables 1 and 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


@app.command()
def sweep(
    run_dir: Path = typer.Argument(..., help="A DQN run directory (spikeverse train)."),
    timesteps: str = typer.Option("8,16,32,64,128,256,500", help="Simulation lengths T, comma-separated."),
    percentiles: Optional[str] = typer.Option(None, help="tan, fast: normalization percentiles p in (0, 100], comma-separated (naive normalizes nothing: its rows show p = 100).", show_default="99,99.9,99.99,100"),
    readouts: str = typer.Option("rate,robust", help="Readouts, comma-separated: rate (seed 001's normal), robust (eq. 17), count, membrane."),
    method: str = typer.Option("tan", help="Conversion method: tan (seed 001), naive (seed 000) or fast (QCFS fine-tune, one per p)."),
    episodes: int = typer.Option(10, help="Evaluation episodes per setting and for the DQN (seed 001 tables: 50)."),
    seed: int = typer.Option(0, help="Seed of the frame collection and of every evaluation."),
    frames: int = typer.Option(15_000, help="Frames played by the DQN to collect activations (once per sweep)."),
    epsilon: float = typer.Option(0.05, help="Epsilon while collecting frames and evaluating."),
    workers: Optional[int] = typer.Option(None, help="Processes evaluating settings in parallel (default: all cores; 1 = in this process). On CUDA the settings run one after another (workers 1)."),
    device: str = typer.Option("cpu", help="cpu (settings in parallel), cuda (one setting at a time, workers 1) or auto (cuda when available)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Folder for the figures, sweep.json and sweep.md."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Sweep T, p and the readout of the converted SNN: score, conversion rate, Pearson r, DQN vs SNN."""
    from spikeverse.study.sweep import markdown, parse_list, run_sweep

    if percentiles is not None and method == "naive":
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError("--percentiles does not apply to --method naive (it normalizes nothing)")
    if percentiles is None:
        percentiles = "100" if method == "naive" else "99,99.9,99.99,100"
    res = run_sweep(run_dir, timesteps=parse_list(timesteps, int, "--timesteps"),
                    percentiles=parse_list(percentiles, float, "--percentiles"),
                    readouts=parse_list(readouts, str, "--readouts"), method=method, episodes=episodes, seed=seed,
                    frames=frames, epsilon=epsilon, workers=workers, device=device, plot_dir=plot, progress=progress)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        typer.echo(markdown(res), nl=False)
        if plot is not None:
            typer.echo(f"\nfigures, sweep.json and sweep.md in {plot}")
