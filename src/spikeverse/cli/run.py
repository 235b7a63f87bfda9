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
    steps: Optional[int] = typer.Option(None, help="Training steps (default per env; MinAtar: 500,000)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    methods: str = typer.Option("tan,fast", "--methods", help="Conversion methods, comma-separated: tan (seed 001), fast (QCFS fine-tune, V_thr/2, analog readout), naive (seed 000)."),
    timesteps: Optional[int] = typer.Option(None, help="SNN simulation steps per decision (default: tan/naive 100, fast 32)."),
    levels: Optional[int] = typer.Option(None, help="fast: QCFS levels of the fine-tune (0 = none).", show_default="32"),
    finetune_steps: Optional[int] = typer.Option(None, help="fast: Adam steps of the QCFS fine-tune.", show_default="50000"),
    finetune_frames: Optional[int] = typer.Option(None, help="fast: frames of the DQN's play the fine-tune learns from (default 300,000, at most 1 GiB)."),
    percentile: Optional[float] = typer.Option(None, help="tan, fast: normalization percentile (seed 001).", show_default="99.9"),
    frames: int = typer.Option(15_000, help="Frames played to collect activations for normalization."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train a DQN, convert it to a spiking network, evaluate both, report (resumes training)."""
    from spikeverse.cli.convert import flag
    from spikeverse.convert import refuse_stray_options
    from spikeverse.study.pipeline import run_pipeline

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    given = {k: v for k, v in dict(percentile=percentile, levels=levels, finetune_steps=finetune_steps,
                                   finetune_frames=finetune_frames).items() if v is not None}
    # unknown method names are refused by run_pipeline, before any work
    refuse_stray_options(chosen, given, f"--methods {','.join(chosen)}", name=flag)
    res = run_pipeline(env, out, seed=seed, episodes=episodes, device=device, steps=steps, progress=progress,
                       methods=chosen, timesteps=timesteps, frames=frames, **given)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        d = res["dqn"]
        snns = "; ".join(f"SNN {m} (T={s['timesteps']}) {s['mean']:.1f} +- {s['std']:.1f}, conversion rate "
                         f"{s['conversion_rate']:.3f}" for m, s in res["snn"].items())
        typer.echo(f"{env}: DQN {d['mean']:.1f} +- {d['std']:.1f}; {snns} (over {d['n']} episodes); "
                   f"report in {Path(out or Path('runs') / env.replace('/', '-')) / 'report' / 'report.md'}")
