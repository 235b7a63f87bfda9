"""One evolution driver for every ask/tell optimizer (the GA of ``evo.ga``, the ES of
``evo.es``) over a :class:`Problem`, in a resumable run directory (``io.rundir.RunDir``).

One generation: ``genomes, keys = optimizer.ask()``; their fitness is evaluated through the
executor (one chunk of genomes per worker, :func:`evaluate`); ``optimizer.tell(fitness)`` returns
the generation's individual fitness and its extra generations.csv columns, or None when it asks
for another evaluation within the generation first (the ES confirms mean weights that reach the
target on fresh episodes). A key names what an evaluation plays ((seed, generation, index) for an
individual), never the worker it runs in, so any number of workers gives the same run. The run
stops at the optimizer's ``solved_generation`` or after its config's ``generations``.

Run directory:
    config.yaml            method, env, the optimizer's options, the network (every default written out)
    generations.csv        generation, best, mean, std (of the population's fitness), the
                           optimizer's columns, wall_s (cumulative seconds)
    individuals.csv        generation, index, fitness (seed 002 Fig. 12)
    checkpoint.safetensors the optimizer's state and the history in its layout (``state_dict``),
                           written atomically after every generation
A rerun of the same run resumes after the last finished generation (exactly as if it had not
stopped); a larger ``generations`` budget continues a finished run; other options are refused.
The CSV files are rewritten from the checkpoint's history when a run resumes, so a run killed
between the checkpoint and its CSV rows leaves no gap.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.io.rundir import CHECKPOINT, RunDir, require_config
from spikeverse.progress import Progress

GENERATIONS_CSV = "generations.csv"
INDIVIDUALS_CSV = "individuals.csv"
GENERATION_FIELDS = ("generation", "best", "mean", "std")  # then the optimizer's fields, then wall_s
INDIVIDUAL_FIELDS = ("generation", "index", "fitness")


class Problem(Protocol):
    """What an optimizer evolves: genomes of ``n_params`` genes, scored by ``fitness`` (higher
    is better) for the evaluation each key names. ``fitness`` is called in worker processes,
    so the problem must be picklable. ``to_dict`` is the network section of config.yaml."""

    n_params: int

    def initial_population(self, rng: np.random.Generator, n: int) -> np.ndarray: ...

    def fitness(self, genomes: np.ndarray, keys: Sequence[tuple]) -> list[float]: ...

    def to_dict(self) -> dict: ...


@dataclass
class History:
    """Every finished generation: the fitness of each individual, its generations.csv row and
    the cumulative wall seconds after it."""

    fitness: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    walls: list = field(default_factory=list)

    def append(self, fitness: np.ndarray, row: dict, wall: float) -> None:
        self.fitness.append(fitness)
        self.rows.append(row)
        self.walls.append(wall)

    @property
    def wall_s(self) -> float:
        return self.walls[-1] if self.walls else 0.0


class Optimizer(Protocol):
    """An ask/tell optimizer the driver runs. ``method`` names its config.yaml section (and the
    run's method), ``label`` the run in messages, ``kind`` its checkpoint kind, ``fields`` its
    extra generations.csv columns; ``config.generations`` is the budget."""

    method: str
    label: str
    kind: str
    fields: tuple[str, ...]
    config: Any
    generation: int  # finished generations
    best_fitness: float
    solved_generation: int | None
    history: History

    @classmethod
    def from_run_config(cls, config: dict) -> "Optimizer": ...

    def options(self) -> dict: ...

    def initialize(self, problem: Problem) -> None: ...

    def ask(self) -> tuple[np.ndarray, list]: ...

    def tell(self, fitness: np.ndarray) -> tuple[np.ndarray, dict] | None: ...

    def state_dict(self, config: dict) -> tuple[dict[str, torch.Tensor], dict]: ...

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...

    def summary(self) -> dict: ...


def round6(x: float) -> float:
    """A fitness as the CSV files and summaries show it (6 decimals)."""
    return round(float(x), 6)


def generation_row(generation: int, fitness: np.ndarray, wall: float, **extra) -> dict:
    """A generations.csv row: the population's best, mean and std, the optimizer's columns, wall_s."""
    return dict(generation=generation, best=round6(fitness.max()), mean=round6(fitness.mean()), std=round6(fitness.std()),
                **extra, wall_s=round(wall, 3))


# --- evaluation --------------------------------------------------------------------------------


def _evaluate_chunk(problem: Problem, item: tuple[np.ndarray, list]) -> list[float]:
    """The executor's task: the fitness of a chunk of genomes (module level: picklable)."""
    genomes, keys = item
    return problem.fitness(genomes, keys)


def evaluate(problem: Problem, genomes: np.ndarray, keys: Sequence[tuple], executor) -> np.ndarray:
    """Fitness of every genome (genome i evaluated as ``keys[i]`` says), the genomes split into
    one contiguous chunk per worker; the result does not depend on the split."""
    n = len(genomes)
    chunks = np.array_split(np.arange(n), max(1, min(getattr(executor, "workers", 1), n)))
    items = [(genomes[c], [keys[int(i)] for i in c]) for c in chunks]
    out = executor.map(functools.partial(_evaluate_chunk, problem), items)
    return np.array([f for part in out for f in part], dtype=np.float64)


def _generation(problem: Problem, optimizer: Optimizer, executor) -> tuple[np.ndarray, dict]:
    """Ask, evaluate and tell until the optimizer has finished its next generation."""
    while True:
        genomes, keys = optimizer.ask()
        done = optimizer.tell(evaluate(problem, genomes, keys, executor))
        if done is not None:
            return done


# --- the run -------------------------------------------------------------------------------------


def run_config(method: str, env_id: str, options: dict, network: dict) -> dict:
    """What config.yaml holds: everything that determines the run's results."""
    return {"method": method, "env": env_id, method: options, "network": network}


def summary(run_dir: str | Path, config: dict, optimizer: Optimizer) -> dict:
    """{"run_dir", "env", "method", "generations", "best_fitness" (best individual),
    "solved_generation", "wall_s"} and the optimizer's own entries."""
    done = optimizer.generation > 0
    return {"run_dir": str(run_dir), "env": config["env"], "method": optimizer.method,
            "generations": optimizer.generation, "best_fitness": round6(optimizer.best_fitness) if done else None,
            "solved_generation": optimizer.solved_generation, "wall_s": round(optimizer.history.wall_s, 2),
            **optimizer.summary()}


def _restore(optimizer: Optimizer, tensors: dict, meta: dict, where: Path) -> None:
    try:
        optimizer.load_state_dict(tensors, meta)
    except KeyError as e:
        raise SpikeverseError(f"{where}: the {optimizer.label} checkpoint lacks {e}") from None


def load_run(run_dir: str | Path, optimizer_cls: type) -> tuple[dict, Optimizer]:
    """The config of an evolve run directory and its optimizer, restored from the checkpoint
    (``optimizer.history`` holds every generation: for plots and reports)."""
    run_dir = Path(run_dir)
    config = require_config(run_dir, "evolve run")
    if config.get("method") != optimizer_cls.method:
        raise SpikeverseError(f"{run_dir} holds a '{config.get('method') or config.get('agent')}' run, "
                              f"not a '{optimizer_cls.method}' evolve run")
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT, kind=optimizer_cls.kind)
    try:
        optimizer = optimizer_cls.from_run_config(config)
    except (KeyError, TypeError) as e:
        raise SpikeverseError(f"{run_dir / 'config.yaml'} lacks or has bad {optimizer_cls.label} options ({e})") from None
    _restore(optimizer, tensors, meta, run_dir)
    return config, optimizer


def run_evolution(problem: Problem, optimizer: Optimizer, run_dir: str | Path, executor, *, env_id: str,
                  progress: bool | None = None,
                  on_generation: Callable[[dict, np.ndarray], Any] | None = None) -> dict:
    """Evolve ``problem`` with ``optimizer`` into ``run_dir``, resuming from its checkpoint when it
    holds the same run (another run is refused). ``on_generation(row, fitness)`` after each
    generation's checkpoint. ``progress``: generations on a bar (a terminal) or a line per ~10%
    (None), or silent (False). Returns :func:`summary`."""
    config = run_config(optimizer.method, env_id, optimizer.options(), problem.to_dict())
    run = RunDir(run_dir, config, accepts=(optimizer.method,), label=optimizer.label, kind=optimizer.kind,
                 method=optimizer.method, resumable=(f"{optimizer.method}.generations",))
    if run.saved is not None:
        _restore(optimizer, *run.saved, run.path)
    else:
        optimizer.initialize(problem)
    run.begin()
    history, budget = optimizer.history, optimizer.config.generations
    gens = run.metrics(GENERATIONS_CSV, (*GENERATION_FIELDS, *optimizer.fields, "wall_s"), fresh=True)
    inds = run.metrics(INDIVIDUALS_CSV, INDIVIDUAL_FIELDS, fresh=True)  # both rewritten from the history

    def log(row: dict, fitness: np.ndarray) -> None:
        gens.write(row)
        for i, f in enumerate(fitness):
            inds.write(dict(generation=row["generation"], index=i, fitness=round6(f)))

    report = Progress(budget, f"evolve {optimizer.method} {env_id}", unit="generation",
                      initial=optimizer.generation, enabled=progress)
    try:
        for row, fitness in zip(history.rows, history.fitness):
            log(row, fitness)
        while optimizer.solved_generation is None and optimizer.generation < budget:
            t0 = time.perf_counter()
            fitness, extra = _generation(problem, optimizer, executor)
            wall = history.wall_s + time.perf_counter() - t0
            row = generation_row(optimizer.generation, fitness, wall, **extra)
            history.append(fitness, row, wall)
            run.save(*optimizer.state_dict(config))
            log(row, fitness)
            report.update(1, best=row["best"], mean=row["mean"], best_ever=round6(optimizer.best_fitness),
                          **{k: extra[k] for k in optimizer.fields if extra.get(k) is not None})
            if on_generation is not None:
                on_generation(row, fitness)
    finally:
        report.close()
        gens.close()
        inds.close()
    return summary(run.path, config, optimizer)
