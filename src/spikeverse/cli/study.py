"""``spikeverse study``: a grid of environments x seeds x agents, trained, converted, evaluated and
reported (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


@app.command()
def study(
    study_file: Optional[Path] = typer.Argument(None, help="STUDY.yaml: envs, seeds, agents, frames, episodes, robustness (the flags below override it)."),
    out: Optional[Path] = typer.Option(None, help="Study folder (default runs/study-STUDY or runs/study)."),
    envs: Optional[str] = typer.Option(None, help="Environments, comma-separated (e.g. MinAtar/Breakout,MinAtar/Freeway)."),
    seeds: Optional[str] = typer.Option(None, help="Training seeds, comma-separated."),
    agents: Optional[str] = typer.Option(None, help="Agents with their default options, comma-separated: dqn, rainbow, tan (T=500, p 99.9 and 99.99), fast (auto T), naive, dsqn (T=8)."),
    frames: Optional[int] = typer.Option(None, help="Training frames of every trained agent (default: the env's)."),
    episodes: Optional[int] = typer.Option(None, help="Evaluation episodes per agent and seed.", show_default="50"),
    executor: str = typer.Option("local", help="local (processes) or ray (the cluster at RAY_ADDRESS, else a local Ray)."),
    workers: int = typer.Option(1, help="Cells run at once."),
    resume: bool = typer.Option(False, "--resume", help="Continue the study in --out (only what is missing is done)."),
    report_only: bool = typer.Option(False, "--report-only", help="Rewrite the report of the study in --out from the cells finished so far; run nothing."),
    device: str = typer.Option("cpu", help="auto, cpu or cuda."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json."),
) -> None:
    """Train, convert and evaluate every agent of the grid; write the report (Tables 1 and 2, energy, aggregate IQM)."""
    from spikeverse.errors import SpikeverseError
    from spikeverse.study.cells import CELLS
    from spikeverse.study.runner import report_study, run_study
    from spikeverse.study.spec import load_spec, parse_list

    spec = load_spec(study_file, envs=parse_list(envs), seeds=parse_list(seeds, int), agents=parse_list(agents),
                     frames=frames, episodes=episodes)
    if out is None:
        out = Path("runs") / (f"study-{study_file.stem}" if study_file is not None else "study")
    if report_only:
        if resume or executor != "local" or workers != 1 or device != "cpu":
            raise SpikeverseError("--report-only runs nothing: it takes no --resume, --executor, --workers or --device")
        res = report_study(spec, out)
    else:
        if (out / CELLS).is_dir() and any((out / CELLS).iterdir()) and not resume:
            raise SpikeverseError(f"{out} already holds a study; pass --resume to continue it, or choose another --out")
        res = run_study(spec, out, executor=executor, workers=workers, device=device, progress=progress)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        failed = f"; {len(res['errors'])} cells failed (see the report)" if res["errors"] else ""
        typer.echo(f"study of {len(spec.envs)} envs x {len(spec.seeds)} seeds: report in {out / 'report.md'}{failed}")
