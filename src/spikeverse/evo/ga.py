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

Run directory:
    config.yaml            method, env, GA options, network (every default written out)
    generations.csv        generation, best, mean, std, wall_s (cumulative seconds)
    individuals.csv        generation, index, fitness (seed 002 Fig. 12)
    checkpoint.safetensors kind "evo": the last generation's population and fitness, the best
                           individual, the fitness history; written atomically each generation
The CSV files are rewritten from the checkpoint's history when a run resumes, so a run killed
between the checkpoint and its CSV rows leaves no gap.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from deap import algorithms, base, tools

from spikeverse.errors import SpikeverseError, require_all
from spikeverse.io.checkpoint import load_checkpoint, save_checkpoint
from spikeverse.io.rundir import CHECKPOINT, MetricsWriter, read_config, require_config, same_run, write_config
from spikeverse.progress import Progress
from spikeverse.runtime import derive_seed

GENERATIONS_CSV = "generations.csv"
INDIVIDUALS_CSV = "individuals.csv"
GENERATION_FIELDS = ("generation", "best", "mean", "std", "wall_s")
INDIVIDUAL_FIELDS = ("generation", "index", "fitness")
KIND = "evo"
DEFAULT_INDPB = 0.05


class Problem(Protocol):
    """What the GA evolves: genomes of ``n_params`` genes, scored by ``fitness`` (higher is
    better). ``fitness`` is called in worker processes, so the problem must be picklable."""

    n_params: int

    def initial_population(self, rng: np.random.Generator, n: int) -> np.ndarray: ...

    def fitness(self, genomes: np.ndarray, keys: Sequence[tuple[int, int, int]]) -> list[float]: ...

    def to_dict(self) -> dict: ...


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


# --- evaluation --------------------------------------------------------------------------------


def _evaluate_chunk(problem: Problem, item: tuple[np.ndarray, list]) -> list[float]:
    """The executor's task: the fitness of a chunk of genomes (module level: picklable)."""
    genomes, keys = item
    return problem.fitness(genomes, keys)


def evaluate(problem: Problem, population: np.ndarray, seed: int, generation: int, executor) -> np.ndarray:
    """Fitness of every individual, the population split into one chunk per worker; individual
    i gets the key (seed, generation, i), so the result does not depend on the split."""
    n = len(population)
    chunks = np.array_split(np.arange(n), min(executor.workers, n))
    items = [(population[c], [(seed, generation, int(i)) for i in c]) for c in chunks]
    out = executor.map(functools.partial(_evaluate_chunk, problem), items)
    return np.array([f for part in out for f in part], dtype=np.float64)


# --- the run -------------------------------------------------------------------------------------


def run_config(problem: Problem, config: GAConfig, env_id: str) -> dict:
    """What config.yaml holds: everything that determines the run's results."""
    return {"method": "ga", "env": env_id, "ga": config.to_dict(), "network": problem.to_dict()}


@dataclass
class _State:
    """A run after ``generation`` finished generations."""

    generation: int = 0
    population: np.ndarray | None = None  # of the last finished generation
    fitness: np.ndarray | None = None
    history: list = None  # fitness per generation
    walls: list = None  # cumulative wall seconds after each generation
    best: np.ndarray | None = None
    best_fitness: float = -np.inf
    best_generation: int | None = None
    best_index: int | None = None
    solved_generation: int | None = None

    def __post_init__(self):
        self.history = self.history or []
        self.walls = self.walls or []


def _save(run_dir: Path, state: _State, cfg: dict) -> None:
    tensors = {"population": torch.from_numpy(state.population), "fitness": torch.from_numpy(state.fitness),
               "best": torch.from_numpy(state.best), "history.fitness": torch.from_numpy(np.stack(state.history)),
               "history.wall_s": torch.tensor(state.walls, dtype=torch.float64)}
    meta = {"kind": KIND, "method": "ga", "env_id": cfg["env"], "config": cfg, "generation": state.generation,
            "best_fitness": state.best_fitness, "best_generation": state.best_generation,
            "best_index": state.best_index, "solved_generation": state.solved_generation,
            "rng": {"python_random": "seeded per generation from derive_seed(seed, generation, 'variation')",
                    "next_seed": derive_seed(cfg["ga"]["seed"], state.generation + 1, "variation")}}
    save_checkpoint(run_dir / CHECKPOINT, tensors, meta)


def _load(run_dir: Path) -> _State:
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT, kind=KIND)
    try:
        return _State(generation=int(meta["generation"]), population=tensors["population"].numpy(),
                      fitness=tensors["fitness"].numpy(), history=list(tensors["history.fitness"].numpy()),
                      walls=tensors["history.wall_s"].tolist(), best=tensors["best"].numpy(),
                      best_fitness=float(meta["best_fitness"]), best_generation=meta["best_generation"],
                      best_index=meta["best_index"], solved_generation=meta["solved_generation"])
    except KeyError as e:
        raise SpikeverseError(f"{run_dir}: the evo checkpoint lacks {e}") from None


def load_run(run_dir: str | Path) -> tuple[dict, _State]:
    """The config and state of an evolve run directory (for plots and reports)."""
    return require_config(run_dir, "evolve run"), _load(Path(run_dir))


class _Logs:
    """generations.csv and individuals.csv, rewritten from the history then appended to."""

    def __init__(self, run_dir: Path, state: _State):
        for name in (GENERATIONS_CSV, INDIVIDUALS_CSV):
            (run_dir / name).unlink(missing_ok=True)
        self.gens = MetricsWriter(run_dir / GENERATIONS_CSV, GENERATION_FIELDS)
        self.inds = MetricsWriter(run_dir / INDIVIDUALS_CSV, INDIVIDUAL_FIELDS)
        for g, (fit, wall) in enumerate(zip(state.history, state.walls), start=1):
            self.write(g, fit, wall)

    def write(self, generation: int, fitness: np.ndarray, wall: float) -> None:
        self.gens.write(dict(generation=generation, best=_r(fitness.max()), mean=_r(fitness.mean()),
                             std=_r(fitness.std()), wall_s=round(wall, 3)))
        for i, f in enumerate(fitness):
            self.inds.write(dict(generation=generation, index=i, fitness=_r(f)))

    def close(self) -> None:
        self.gens.close()
        self.inds.close()


def _r(x: float) -> float:
    return round(float(x), 6)


def summary(run_dir: Path, state: _State) -> dict:
    return {"best_fitness": _r(state.best_fitness) if state.generation else None, "generations": state.generation,
            "solved_generation": state.solved_generation, "wall_s": round(state.walls[-1], 2) if state.walls else 0.0,
            "run_dir": str(run_dir)}


def run_ga(problem: Problem, config: GAConfig, env_id: str, run_dir: str | Path, executor,
           on_generation: Callable[[int, np.ndarray], Any] | None = None, progress: bool | None = None) -> dict:
    """Evolve ``problem`` into ``run_dir``, resuming from its checkpoint when it holds the same
    run (another config is refused). Returns {"best_fitness", "generations",
    "solved_generation", "wall_s", "run_dir"}; ``on_generation(g, fitness)`` after each one.
    ``progress``: generations on a bar (a terminal) or a line per ~10% (None), or silent (False)."""
    run_dir = Path(run_dir)
    cfg = run_config(problem, config, env_id)
    old = read_config(run_dir)  # a corrupted config.yaml is refused here, never overwritten
    if old is not None and old.get("method") != "ga":  # even without a checkpoint (a run killed before its first)
        raise SpikeverseError(f"{run_dir} holds a '{old.get('method') or old.get('agent')}' run; use another --out")
    if old is not None and (run_dir / CHECKPOINT).exists():
        if not same_run(old, cfg, "generations", "ga"):
            raise SpikeverseError(f"{run_dir} holds another evolve run; use another --out or the same options")
        state = _load(run_dir)
    else:
        state = _State()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, cfg)
    logs = _Logs(run_dir, state)
    report = Progress(config.generations, f"evolve ga {env_id}", unit="generation", initial=state.generation,
                      enabled=progress)
    try:
        while state.solved_generation is None and state.generation < config.generations:
            t0 = time.perf_counter()
            g = state.generation + 1
            if g == 1:
                population = problem.initial_population(np.random.default_rng(derive_seed(config.seed, 0, "init")),
                                                        config.population)
            else:
                population = next_generation(state.population, state.fitness, config, g)
            fitness = evaluate(problem, population, config.seed, g, executor)
            wall = (state.walls[-1] if state.walls else 0.0) + time.perf_counter() - t0
            i = int(np.argmax(fitness))
            if fitness[i] > state.best_fitness:
                state.best, state.best_fitness = population[i].copy(), float(fitness[i])
                state.best_generation, state.best_index = g, i
            if config.target is not None and fitness[i] >= config.target:
                state.solved_generation = g
            state.generation, state.population, state.fitness = g, population, fitness
            state.history.append(fitness)
            state.walls.append(wall)
            _save(run_dir, state, cfg)
            logs.write(g, fitness, wall)
            report.update(1, best=float(fitness.max()), mean=float(fitness.mean()), best_ever=state.best_fitness)
            if on_generation is not None:
                on_generation(g, fitness)
    finally:
        report.close()
        logs.close()
    return summary(run_dir, state)
