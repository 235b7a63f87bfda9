"""The genetic algorithm of seed 002 (sec. 3.3.2; L2L's ``GeneticAlgorithmOptimizer``) over the
weights of a spiking network, with DEAP's operators, in a resumable run directory.

One generation (DEAP's ``varAnd`` scheme): every individual is evaluated; the ``elite`` best
are copied unchanged into the next generation; the other N - elite are chosen by
``selTournament`` (tournament size 4), consecutive pairs are mated by ``cxBlend`` (alpha 0.5)
with probability 0.7 and each child is mutated by ``mutGaussian`` (N(0, 1) added to each gene
with probability ``mut_indpb``) with probability 0.7. Every individual, elites included, is
evaluated in every generation (an evaluation may depend on the generation, e.g. its start
state). The run stops at the first generation whose best fitness reaches ``target`` (Mountain
Car: 0.5, the goal) or after ``generations`` generations (numbered from 1).

Ours, where seed 002 leaves a choice or its GA is too slow for the target (Mountain Car within
20 generations; seed 002 reports about 18, L2L about 160; tuned on seeds 0-2, 3/3 solve; on the
untuned seeds 100-149, 41/50 solve, median generation 7: benchmarks/results/evolve_mountaincar_untuned.json):
``mut_indpb`` = 0.05 (about 16 of 315 genes per mutation; seed 002 gives the mutation N(0, 1)
but not its per-gene probability, L2L leaves it a parameter) and ``elite`` = 2 (seed 002's GA
has none: ``elite=0``). Measured on Mountain Car with the network defaults of
``models.mountaincar_snn``, seeds 0-23: elite 2 reaches 0.5 within 20 generations for 20 of 24 seeds,
elite 0 for 15 (benchmarks/results/evolve_mountaincar_study.md).

Randomness. The initial population comes from ``derive_seed(seed, 0, "init")``; generation g's
variation runs DEAP's operators (which draw from Python's global ``random``) with that module
seeded from ``derive_seed(seed, g, "variation")``, its previous state restored afterwards; the
evaluations get (seed, generation, index) keys. Nothing depends on the previous generation's
random state, so the checkpoint (population and fitness of the last finished generation)
resumes a run exactly as if it had not stopped, for any number of workers.

The run (``evo.run.run_evolution``) and its directory: config.yaml (method "ga", env, GA
options, network), generations.csv (generation, best, mean, std, wall_s), individuals.csv, and
checkpoint.safetensors of kind ``models.mountaincar_snn.KIND``: the last generation's population
and fitness, the best individual, the fitness history and the cumulative wall seconds.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from deap import algorithms, base, tools

from spikeverse.errors import require_all
from spikeverse.evo.run import History, Problem, generation_row, run_evolution
from spikeverse.evo.run import load_run as _load_run
from spikeverse.io.rundir import Best
from spikeverse.models.mountaincar_snn import KIND
from spikeverse.runtime import derive_seed

DEFAULT_INDPB = 0.05


@dataclass(frozen=True)
class GAConfig:
    """Seed 002's GA (population 32, tournament 4, cxBlend 0.5 at 0.7, N(0, 1) mutation at 0.7)."""

    population: int = 32
    generations: int = 20
    seed: int = 0
    tournament: int = 4
    cx_prob: float = 0.7
    blend_alpha: float = 0.5
    mut_prob: float = 0.7
    mut_sigma: float = 1.0
    mut_indpb: float = DEFAULT_INDPB
    elite: int = 2
    target: float | None = 0.5

    def __post_init__(self):
        checks = [
            (self.population >= 4, f"--population must be >= 4, got {self.population}"),
            (self.generations >= 1, f"--generations must be >= 1, got {self.generations}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.tournament >= 1, f"tournament size must be >= 1, got {self.tournament}"),
            (0 <= self.elite < self.population, f"--elite must be in [0, population), got {self.elite}"),
            (self.blend_alpha >= 0 and self.mut_sigma >= 0, "blend alpha and mutation sigma must be >= 0"),
        ]
        checks += [(0.0 <= getattr(self, p) <= 1.0, f"{p} must be in [0, 1], got {getattr(self, p)}")
                   for p in ("cx_prob", "mut_prob", "mut_indpb")]
        require_all(checks)

    def to_dict(self) -> dict:
        return asdict(self)


# --- one generation of DEAP operators --------------------------------------------------------


class FitnessMax(base.Fitness):
    """DEAP's fitness, maximised."""

    weights = (1.0,)


class Individual(list):
    """A genome as DEAP's operators expect it: a list of floats with a ``fitness``."""

    def __init__(self, genes, fitness: float | None = None):
        super().__init__(genes)
        self.fitness = FitnessMax()
        if fitness is not None:
            self.fitness.values = (float(fitness),)


def toolbox(config: GAConfig):
    """A DEAP toolbox with seed 002's operators (looked up in ``deap.tools`` when called)."""
    tb = base.Toolbox()
    tb.register("select", tools.selTournament, tournsize=config.tournament)
    tb.register("mate", tools.cxBlend, alpha=config.blend_alpha)
    tb.register("mutate", tools.mutGaussian, mu=0.0, sigma=config.mut_sigma, indpb=config.mut_indpb)
    return tb


@contextlib.contextmanager
def _python_random(seed: int):
    """Python's global ``random`` (which DEAP's operators use) seeded with ``seed`` inside the
    block, its previous state restored after it."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def next_generation(population: np.ndarray, fitness: Sequence[float], config: GAConfig, generation: int) -> np.ndarray:
    """Generation ``generation`` from the evaluated previous one: the ``elite`` best (ties by
    index) unchanged, then ``varAnd(selTournament(...), cx_prob, mut_prob)`` with ``cxBlend`` and
    ``mutGaussian``; Python's ``random`` seeded from (seed, generation)."""
    fitness = np.asarray(fitness, dtype=np.float64)
    inds = [Individual(row, f) for row, f in zip(np.asarray(population, dtype=np.float64).tolist(), fitness)]
    order = np.argsort(-fitness, kind="stable")
    elites = [list(inds[i]) for i in order[: config.elite]]
    tb = toolbox(config)
    with _python_random(derive_seed(config.seed, generation, "variation")):
        parents = tb.select(inds, len(inds) - config.elite)
        offspring = algorithms.varAnd(parents, tb, config.cx_prob, config.mut_prob)
    return np.array(elites + [list(o) for o in offspring], dtype=np.float64)


# --- the optimizer -----------------------------------------------------------------------------


class GA:
    """The GA as an ask/tell optimizer (``evo.run``): generation 1 is the initial population
    (``derive_seed(seed, 0, "init")``), every later one :func:`next_generation` of the last told
    one; individual i of generation g is evaluated with the key (seed, g, i). Keeps the best
    individual (the first on ties) and stops at the first generation whose best reaches ``target``."""

    method, label, kind, fields = "ga", "evolve", KIND, ()

    def __init__(self, config: GAConfig):
        self.config = config
        self.generation = 0
        self.population: np.ndarray | None = None  # of the last finished generation
        self.fitness: np.ndarray | None = None
        self.best_individual = Best()  # at = (generation, index)
        self.solved_generation: int | None = None
        self.history = History()
        self._asked: np.ndarray | None = None

    @classmethod
    def from_run_config(cls, config: dict) -> "GA":
        return cls(GAConfig(**config["ga"]))

    def options(self) -> dict:
        return self.config.to_dict()

    @property
    def best(self) -> np.ndarray | None:
        return self.best_individual.value

    @property
    def best_fitness(self) -> float:
        return self.best_individual.score

    @property
    def best_generation(self) -> int | None:
        return self.best_individual.at[0] if self.best_individual.found else None

    @property
    def best_index(self) -> int | None:
        return self.best_individual.at[1] if self.best_individual.found else None

    def initialize(self, problem) -> None:
        rng = np.random.default_rng(derive_seed(self.config.seed, 0, "init"))
        self._asked = problem.initial_population(rng, self.config.population)

    def ask(self) -> tuple[np.ndarray, list]:
        g = self.generation + 1
        if g > 1:
            self._asked = next_generation(self.population, self.fitness, self.config, g)
        return self._asked, [(self.config.seed, g, i) for i in range(len(self._asked))]

    def tell(self, fitness: np.ndarray) -> tuple[np.ndarray, dict]:
        g, population = self.generation + 1, self._asked
        i = int(np.argmax(fitness))
        self.best_individual.offer(fitness[i], lambda: population[i].copy(), (g, i), latest=False)
        if self.config.target is not None and fitness[i] >= self.config.target:
            self.solved_generation = g
        self.generation, self.population, self.fitness = g, population, fitness
        return fitness, {}

    def state_dict(self, config: dict) -> tuple[dict[str, torch.Tensor], dict]:
        h = self.history
        tensors = {"population": torch.from_numpy(self.population), "fitness": torch.from_numpy(self.fitness),
                   "best": torch.from_numpy(self.best), "history.fitness": torch.from_numpy(np.stack(h.fitness)),
                   "history.wall_s": torch.tensor(h.walls, dtype=torch.float64)}
        meta = {"kind": KIND, "method": "ga", "env_id": config["env"], "config": config, "generation": self.generation,
                "best_fitness": self.best_fitness, "best_generation": self.best_generation,
                "best_index": self.best_index, "solved_generation": self.solved_generation,
                "rng": {"python_random": "seeded per generation from derive_seed(seed, generation, 'variation')",
                        "next_seed": derive_seed(self.config.seed, self.generation + 1, "variation")}}
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.generation = int(meta["generation"])
        self.population, self.fitness = tensors["population"].numpy(), tensors["fitness"].numpy()
        best_at = None if meta["best_generation"] is None else (meta["best_generation"], meta["best_index"])
        self.best_individual = Best(float(meta["best_fitness"]), tensors["best"].numpy(), best_at)
        self.solved_generation = meta["solved_generation"]
        fitness, walls = list(tensors["history.fitness"].numpy()), tensors["history.wall_s"].tolist()
        rows = [generation_row(g, f, w) for g, (f, w) in enumerate(zip(fitness, walls), start=1)]
        self.history = History(fitness, rows, walls)

    def summary(self) -> dict:
        return {}


# --- the run -------------------------------------------------------------------------------------


def run_ga(problem: Problem, config: GAConfig, env_id: str, run_dir: str | Path, executor,
           on_generation: Callable[[int, np.ndarray], Any] | None = None, progress: bool | None = None) -> dict:
    """Evolve ``problem`` (e.g. a :class:`~spikeverse.models.mountaincar_snn.MountainCarSNN`) by
    the GA into ``run_dir`` (:func:`~spikeverse.evo.run.run_evolution`); ``on_generation(g,
    fitness)`` after each generation. Returns {"run_dir", "env", "method", "generations",
    "best_fitness", "solved_generation", "wall_s"}."""
    callback = None if on_generation is None else (lambda row, fitness: on_generation(row["generation"], fitness))
    return run_evolution(problem, GA(config), run_dir, executor, env_id=env_id, progress=progress,
                         on_generation=callback)


def load_run(run_dir: str | Path) -> tuple[dict, GA]:
    """The config and the restored :class:`GA` of a GA run directory (for plots and reports)."""
    return _load_run(run_dir, GA)
