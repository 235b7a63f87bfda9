"""The figures of any run directory (``spikeverse plot RUN_DIR``), chosen by what the run is:

- a DQN or DSQN training run: episode return against environment steps, with the moving
  average and the greedy evaluations made during training (``figures/learning_curve.png``);
- an R-STDP run: episode length against steps, with its evaluations; a tabular run: return
  against episodes;
- a GA evolve run: seed 002's three figures (fitness per individual, output heatmaps, episode);
- an ES evolve run: fitness per individual with the mean weights' evaluation;
- a spiking MNIST run: seed 000's raster and output spike counts, accuracy per epoch (and vs T)
  (``analysis.mnist_plots``).
A converted SNN has no history to draw (``spikeverse sweep --plot`` draws its T sweep).
"""

from __future__ import annotations

from pathlib import Path

from spikeverse.analysis.evo_plots import es_figures, evolve_figures
from spikeverse.analysis.mnist_plots import mnist_figures
from spikeverse.analysis.plots import learning_curve
from spikeverse.errors import SpikeverseError
from spikeverse.io.rundir import EVALS, METRICS, read_metrics, require_config

LEARNING_CURVE = "learning_curve.png"


def _column(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def training_figures(run_dir: Path, cfg: dict) -> list[Path]:
    """The learning curve of a training run (dqn, dsqn, rstdp or tabular) from its CSV files."""

    agent = cfg["agent"]
    rows = read_metrics(run_dir / METRICS)
    if not rows:
        raise SpikeverseError(f"{run_dir} has no finished episode in {METRICS} yet")
    evals = read_metrics(run_dir / EVALS)
    env = cfg.get("env_id", "")
    path = run_dir / "figures" / LEARNING_CURVE
    if agent == "tabular":
        return [learning_curve(_column(rows, "episode"), _column(rows, "episode_return"), path, xlabel="episode",
                               title=f"tabular Q-learning on {env}")]
    ys, ylabel = ("length", "episode length") if agent == "rstdp" else ("episode_return", "return")
    return [learning_curve(_column(rows, "step"), _column(rows, ys), path, ylabel=ylabel,
                           evals=(_column(evals, "step"), _column(evals, "mean")) if evals else None,
                           title=f"{agent.upper()} on {env}")]


def run_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of the run in ``run_dir`` to ``run_dir/figures/`` and return their paths."""
    run_dir = Path(run_dir)
    cfg = require_config(run_dir)
    method, agent = cfg.get("method"), cfg.get("agent")
    if method == "ga":

        return evolve_figures(run_dir)
    if method == "es":

        return es_figures(run_dir)
    if agent == "mnist":
        return mnist_figures(run_dir)
    if agent in ("dqn", "dsqn", "rstdp", "tabular"):
        return training_figures(run_dir, cfg)
    if agent == "snn":
        raise SpikeverseError(f"{run_dir} holds a converted SNN, which has no training history; "
                              "draw its T sweep with spikeverse sweep --plot")
    raise SpikeverseError(f"{run_dir} holds a run spikeverse cannot draw (agent {agent!r}, method {method!r})")
