"""``spikeverse evolve``: evolve a spiking network's weights into a run directory (resumes if it
holds a checkpoint of the same run). Methods: ``ga`` (seed 002's genetic algorithm, Mountain Car)
and ``es`` (an evolution strategy, OpenAI-ES, on the CartPole SNN: Hasegan et al.'s EVOL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app

METHODS = ("ga", "es")
ENVS = {"ga": ("MountainCar-v0",), "es": ("CartPole-v1",)}


def default_run_dir(env_id: str, method: str, seed: int) -> Path:
    return Path("runs") / env_id.replace("/", "-") / f"evolve-{method}-seed{seed}"


@app.command()
def evolve(
    env: str = typer.Option("MountainCar-v0", "--env", help="Environment id (the GA evolves MountainCar-v0)."),
    method: str = typer.Option("ga", help="ga (seed 002's genetic algorithm, MountainCar-v0) or es (evolution strategy, CartPole-v1)."),
    population: int = typer.Option(32, help="Individuals per generation (ga >= 4; es: even, antithetic pairs)."),
    generations: Optional[int] = typer.Option(None, help="Generation budget (default ga 20, es 200); rerun with more to go on."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/ENV/evolve-METHOD-seedS)."),
    workers: int = typer.Option(1, help="Fitness evaluations running at once (processes, or Ray tasks)."),
    executor: str = typer.Option("local", help="local (processes on this machine) or ray (RAY_ADDRESS, else a local Ray)."),
    neuron: Optional[str] = typer.Option(None, help="ga: neuron model, lif or iaf_psc_alpha (NEST's).", show_default="lif"),
    hidden: Optional[int] = typer.Option(None, help="Hidden neurons (default ga 5, es 32)."),
    start: Optional[str] = typer.Option(None, help="ga: start states, fixed (one set per run, seed 002), generation (a set per generation, L2L) or individual.", show_default="fixed"),
    episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation of an individual (default ga 1, es 4); its fitness is their mean."),
    elite: Optional[int] = typer.Option(None, help="ga: best individuals copied unchanged into the next generation (0: seed 002's GA).", show_default="2"),
    target: Optional[float] = typer.Option(None, help="Stop at this fitness (ga: a generation's best, default 0.5, the goal; es: the mean weights', default 475)."),
    plot: bool = typer.Option(False, "--plot/--no-plot", help="Write the figures to OUT/figures/."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal; a line per ~10% of the generations otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Evolve a spiking network: Mountain Car by a genetic algorithm (seed 002), CartPole by an evolution strategy."""
    from spikeverse.errors import SpikeverseError

    if method not in METHODS:
        raise SpikeverseError(f"unknown method '{method}' (choose {', '.join(METHODS)})")
    if env not in ENVS[method]:
        raise SpikeverseError(f"--method {method} evolves {', '.join(ENVS[method])} only, got '{env}'")
    from spikeverse.evo import make_executor

    out = out or default_run_dir(env, method, seed)
    if method == "es":
        from spikeverse.evo.es import ESConfig, run_es
        from spikeverse.models.cartpole_snn import CartPoleSNN

        stray = [f"--{k}" for k, v in dict(neuron=neuron, start=start, elite=elite).items() if v is not None]
        if stray:
            raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --method es")
        given = dict(generations=generations, target=target, episodes=episodes,
                     network=None if hidden is None else CartPoleSNN(hidden=hidden))
        cfg = ESConfig(population=population, seed=seed, **{k: v for k, v in given.items() if v is not None})
        with make_executor(executor, workers) as ex:
            summary = run_es(cfg, out, ex, progress=progress)
        generations = cfg.generations
    else:
        from spikeverse.evo.ga import GAConfig, run_ga
        from spikeverse.models.mountaincar_snn import MountainCarSNN

        generations = 20 if generations is None else generations
        config = GAConfig(population=population, generations=generations, seed=seed, elite=2 if elite is None else elite,
                          target=0.5 if target is None else target)
        net = MountainCarSNN(hidden=5 if hidden is None else hidden, neuron=neuron or "lif", start=start or "fixed",
                             episodes=1 if episodes is None else episodes)
        with make_executor(executor, workers) as ex:
            summary = run_ga(net, config, env, out, ex, progress=progress)
    if plot:
        from spikeverse.analysis.run_figures import run_figures

        run_figures(out)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        solved = summary["solved_generation"]
        state = f"solved at generation {solved}" if solved else f"best fitness {summary['best_fitness']}"
        typer.echo(f"evolved {env} ({method}): {state} -> {summary['run_dir']}")
