"""An evolution strategy over the weights of the CartPole SNN (Hasegan et al.'s EVOL, seed 002
sec. 2.3), in the form of OpenAI-ES (Salimans et al. 2017).

One generation g from the mean weights theta (all float64, numpy):
1. eps_1..eps_{n/2} ~ N(0, I) (the noise of generation g); the population is the antithetic
   pairs theta + sigma eps_i (individuals 0..n/2-1) and theta - sigma eps_i (n/2..n-1).
2. fitness F_j = mean episode length of individual j over ``episodes`` CartPole episodes; every
   individual of a generation plays the same initial states (common random numbers, so ranks
   compare networks, not luck). The mean theta itself plays ``eval_episodes`` other episodes:
   its "mean weights" fitness, the stopping criterion.
3. centered-rank fitness shaping: u_j = rank(F_j) / (n - 1) - 1/2 in [-1/2, 1/2] (ties share
   their average rank, so a tie contributes nothing);
4. gradient estimate g = 1/(n sigma) sum_i (u_i^+ - u_i^-) eps_i - ``weight_decay`` theta;
5. Adam (beta1 0.9, beta2 0.999, eps 1e-8) ascends it with step size ``lr``:
   m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, theta <- theta + lr m^ / (sqrt(v^) + eps),
   m^ = m / (1 - b1^t), v^ = v / (1 - b2^t).
The run stops at the first generation whose mean weights reach ``target`` (475 of CartPole-v1's
500) over their ``eval_episodes`` episodes and then again over ``confirm_episodes`` (100) fresh
ones (20 episodes alone let through means that score 437-471 over 100), or after
``generations`` generations (numbered from 1).

Defaults (population 32, sigma 0.1, lr 0.1, 4 episodes per individual, 20 for the mean,
weight decay 0.005, initial weights N(0, 0.5^2)) are ours, tuned on seeds 0-2
(benchmarks/cartpole_es_rstdp.py); Hasegan et al. do not publish theirs in seed 002. On the
untuned seeds 100-109 every run reaches the target (median generation 20.5) and 9/10 final mean
weights play 475 or more over 100 evaluation episodes, median 486.7, lowest 472.6
(benchmarks/results/cartpole_es_rstdp.json).

Randomness: the initial mean from derive_seed(seed, 0, "init"), the noise of generation g from
derive_seed(seed, g, "noise"), the initial states from derive_seed(seed, g, "episodes") and
derive_seed(seed, g, "eval") (and "confirm"). Nothing depends on the previous generation's random state or on
how the work is split: the rows (one individual, one episode) are cut into one chunk per worker,
each chunk one batched simulation (``CartPoleSNN.play``), and a network's episode does not
depend on its batch (exact synaptic sums), so any number of workers gives the same run.

Run directory:
    config.yaml            method "es", env, the ES options, the network (every default written out)
    generations.csv        generation, best, mean, std (the population's fitness), mean_weights
                           (the mean's evaluation), confirm (its confirmation, when it ran),
                           wall_s (cumulative seconds)
    individuals.csv        generation, index, fitness (every individual, as the GA's)
    checkpoint.safetensors kind "cartpole_snn": "weights" (the solving mean weights, else those
                           with the best evaluation so far, latest on ties: what ``spikeverse
                           evaluate`` plays),
                           the next generation's mean, Adam's m, v and t, the history (rows and
                           every individual's fitness); written atomically after every generation
A rerun of the same run resumes after the last finished generation (exactly as if it had not
stopped); a larger ``generations`` budget continues a finished run; other options are refused.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.stats import rankdata

from spikeverse.envs.batched_cartpole import episode_starts
from spikeverse.errors import SpikeverseError, require_all
from spikeverse.evo.ga import INDIVIDUAL_FIELDS, INDIVIDUALS_CSV
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.io.rundir import CHECKPOINT, MetricsWriter, read_config, require_config, same_run, write_config
from spikeverse.models.cartpole_snn import ENV_ID, KIND, MAX_STEPS, CartPoleSNN, SNNPolicy
from spikeverse.progress import Progress
from spikeverse.runtime import derive_seed

GENERATIONS_CSV = "generations.csv"
FIELDS = ("generation", "best", "mean", "std", "mean_weights", "confirm", "wall_s")
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


@dataclass(frozen=True)
class ESConfig:
    """OpenAI-ES on the CartPole SNN (``network``); see the module docstring for each option."""

    population: int = 32
    generations: int = 200
    sigma: float = 0.1
    lr: float = 0.1
    episodes: int = 4  # per individual
    eval_episodes: int = 20  # for the mean weights, each generation
    confirm_episodes: int = 100  # for mean weights that reach the target
    weight_decay: float = 0.005
    target: float | None = 475.0
    max_steps: int = MAX_STEPS
    seed: int = 0
    network: CartPoleSNN = field(default_factory=CartPoleSNN)

    def __post_init__(self):
        if isinstance(self.network, dict):
            object.__setattr__(self, "network", CartPoleSNN.from_dict(self.network))
        checks = [
            (self.population >= 2 and self.population % 2 == 0,
             f"--population must be an even number >= 2 (antithetic pairs), got {self.population}"),
            (self.generations >= 1, f"--generations must be >= 1, got {self.generations}"),
            (self.sigma > 0, f"--sigma must be > 0, got {self.sigma}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (min(self.episodes, self.eval_episodes, self.confirm_episodes) >= 1,
             "episodes, eval_episodes and confirm_episodes must be >= 1"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (1 <= self.max_steps <= MAX_STEPS, f"max_steps must be in [1, {MAX_STEPS}], got {self.max_steps}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
        ]
        require_all(checks)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ESConfig":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


# --- the update ----------------------------------------------------------------------------------


def centered_ranks(fitness) -> np.ndarray:
    """u_j = rank(F_j) / (n - 1) - 1/2 with ranks 0..n-1 (ties: their average rank)."""
    f = np.asarray(fitness, dtype=np.float64)
    if len(f) < 2:
        raise SpikeverseError("fitness shaping needs at least 2 individuals")
    return (rankdata(f, method="average") - 1.0) / (len(f) - 1) - 0.5


def es_gradient(noise: np.ndarray, fitness, sigma: float) -> np.ndarray:
    """The ES estimate of grad E[F(theta + sigma eps)] from antithetic pairs: ``noise`` [n/2, P],
    ``fitness`` [n] (the + half, then the - half): 1/(n sigma) sum_i (u_i^+ - u_i^-) eps_i."""
    u = centered_ranks(fitness)
    half = len(u) // 2
    return (u[:half] - u[half:]) @ noise / (len(u) * sigma)


@dataclass
class Adam:
    """Adam ascent on a numpy vector (Kingma & Ba; the betas of the module docstring)."""

    m: np.ndarray
    v: np.ndarray
    t: int = 0

    @classmethod
    def zeros(cls, n: int) -> "Adam":
        return cls(np.zeros(n), np.zeros(n))

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        """theta + lr m^/(sqrt(v^) + eps): a step *up* the gradient."""
        self.t += 1
        self.m = BETA1 * self.m + (1 - BETA1) * grad
        self.v = BETA2 * self.v + (1 - BETA2) * grad * grad
        m_hat = self.m / (1 - BETA1 ** self.t)
        v_hat = self.v / (1 - BETA2 ** self.t)
        return theta + lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)


def population(theta: np.ndarray, cfg: ESConfig, generation: int) -> tuple[np.ndarray, np.ndarray]:
    """(noise [n/2, P], genomes [n, P]) of ``generation``: theta + sigma eps, then theta - sigma eps."""
    rng = np.random.default_rng(derive_seed(cfg.seed, generation, "noise"))
    noise = rng.standard_normal((cfg.population // 2, len(theta)))
    return noise, np.concatenate([theta + cfg.sigma * noise, theta - cfg.sigma * noise])


# --- evaluation ----------------------------------------------------------------------------------


def _play_chunk(net: CartPoleSNN, max_steps: int, item: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """The executor's task (module level: picklable): episode lengths of the chunk's rows."""
    genomes, row_genome, starts = item
    return net.play(genomes[row_genome], starts, max_steps)


def evaluate_rows(net: CartPoleSNN, genomes: np.ndarray, row_genome: np.ndarray, starts: np.ndarray,
                  executor, max_steps: int = MAX_STEPS) -> np.ndarray:
    """Episode lengths of rows (genome ``row_genome[r]`` from ``starts[r]``), the rows cut into
    ``executor.workers`` contiguous chunks, one batched simulation each."""
    chunks = np.array_split(np.arange(len(row_genome)), max(1, min(getattr(executor, "workers", 1), len(row_genome))))
    items = []
    for c in chunks:
        used, local = np.unique(row_genome[c], return_inverse=True)
        items.append((genomes[used], local, starts[c]))
    out = executor.map(functools.partial(_play_chunk, net, max_steps), items)
    return np.concatenate([np.asarray(o) for o in out])


def generation_fitness(theta: np.ndarray, genomes: np.ndarray, cfg: ESConfig, generation: int,
                       executor) -> tuple[np.ndarray, float]:
    """(fitness of each individual [n], mean-weights fitness) of ``generation``, in one pass."""
    n, k, e = len(genomes), cfg.episodes, cfg.eval_episodes
    train = episode_starts(np.random.default_rng(derive_seed(cfg.seed, generation, "episodes")), k)
    evals = episode_starts(np.random.default_rng(derive_seed(cfg.seed, generation, "eval")), e)
    all_genomes = np.concatenate([genomes, theta[None]])
    row_genome = np.concatenate([np.repeat(np.arange(n), k), np.full(e, n)])
    starts = np.concatenate([np.tile(train, (n, 1)), evals])
    lengths = evaluate_rows(cfg.network, all_genomes, row_genome, starts, executor, cfg.max_steps)
    return lengths[: n * k].reshape(n, k).mean(1), float(lengths[n * k:].mean())


def confirm_fitness(theta: np.ndarray, cfg: ESConfig, generation: int, executor) -> float:
    """Mean episode length of the mean weights over ``confirm_episodes`` fresh episodes."""
    starts = episode_starts(np.random.default_rng(derive_seed(cfg.seed, generation, "confirm")), cfg.confirm_episodes)
    rows = np.zeros(cfg.confirm_episodes, dtype=np.int64)
    return float(evaluate_rows(cfg.network, theta[None], rows, starts, executor, cfg.max_steps).mean())


# --- the run -------------------------------------------------------------------------------------


def run_config(cfg: ESConfig) -> dict:
    """What config.yaml holds: everything that determines the run's results."""
    d = cfg.to_dict()
    return {"method": "es", "env": ENV_ID, "es": {k: v for k, v in d.items() if k != "network"},
            "network": d["network"]}


@dataclass
class _State:
    """A run after ``generation`` finished generations; ``theta`` is the next generation's mean."""

    theta: np.ndarray
    adam: Adam
    generation: int = 0
    rows: list = field(default_factory=list)  # the CSV rows so far
    fitness: list = field(default_factory=list)  # every individual's fitness, per generation
    weights: np.ndarray | None = None  # the mean weights with the best evaluation
    best_eval: float = -np.inf
    best_eval_generation: int | None = None
    best_fitness: float = -np.inf  # of any individual
    solved_generation: int | None = None


def _save(run_dir: Path, state: _State, cfg: ESConfig, config: dict) -> None:
    extra = {"es.theta": torch.from_numpy(state.theta), "es.adam_m": torch.from_numpy(state.adam.m),
             "es.adam_v": torch.from_numpy(state.adam.v),
             "history.fitness": torch.from_numpy(np.stack(state.fitness))}
    meta = {"method": "es", "config": config, "generation": state.generation, "adam_t": state.adam.t,
            "history": state.rows,
            "best_eval": state.best_eval, "best_eval_generation": state.best_eval_generation,
            "best_fitness": state.best_fitness, "solved_generation": state.solved_generation,
            "weights": f"mean weights of generation {state.best_eval_generation} "
                       f"(best mean-weights fitness {state.best_eval:g})",
            "rng": {"noise": "derive_seed(seed, generation, 'noise') per generation",
                    "next_noise_seed": derive_seed(cfg.seed, state.generation + 1, "noise")}}
    SNNPolicy(cfg.network, state.weights).save(run_dir / CHECKPOINT, meta, extra)


def _load(run_dir: Path) -> _State:
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT, kind=KIND)
    try:
        if meta.get("method") != "es":
            raise SpikeverseError(f"{run_dir} holds a '{meta.get('method')}' CartPole run, not an ES run; use another --out")
        rows = list(meta["history"])
        return _State(theta=tensors["es.theta"].numpy().copy(),
                      adam=Adam(tensors["es.adam_m"].numpy().copy(), tensors["es.adam_v"].numpy().copy(),
                                int(meta["adam_t"])),
                      generation=int(meta["generation"]), rows=rows, fitness=list(tensors["history.fitness"].numpy()),
                      weights=tensors["weights"].numpy().copy(),
                      best_eval=float(meta["best_eval"]), best_eval_generation=meta["best_eval_generation"],
                      best_fitness=float(meta["best_fitness"]), solved_generation=meta["solved_generation"])
    except KeyError as e:
        raise SpikeverseError(f"{run_dir}: the ES checkpoint lacks {e}") from None


def load_run(run_dir: str | Path) -> tuple[dict, _State]:
    """The config and state of an ES run directory (for plots and reports)."""
    return require_config(run_dir, "ES run"), _load(Path(run_dir))


def _start(run_dir: Path, cfg: ESConfig, config: dict) -> _State:
    """The state to continue from: the checkpoint of the same run, or a fresh start."""
    old = read_config(run_dir)
    if old is not None and not same_run(old, config, "generations", "es"):
        what = old.get("method") or old.get("agent")
        if what != "es":
            raise SpikeverseError(f"{run_dir} holds a '{what}' run, not an ES run; use another --out")
        raise SpikeverseError(f"{run_dir} holds an ES run with other options; use another --out or the same options")
    if (run_dir / CHECKPOINT).exists():
        if old is None:
            raise SpikeverseError(f"{run_dir} holds a checkpoint but no config.yaml; use another --out")
        return _load(run_dir)
    theta = cfg.network.initial_genome(np.random.default_rng(derive_seed(cfg.seed, 0, "init")))
    return _State(theta=theta, adam=Adam.zeros(len(theta)), weights=theta.copy())


def _r(x: float) -> float:
    return round(float(x), 6)


def summary(run_dir: Path, state: _State) -> dict:
    return {"run_dir": str(run_dir), "env": ENV_ID, "method": "es", "generations": state.generation,
            "best_fitness": _r(state.best_fitness) if state.generation else None,
            "best_mean_weights_fitness": _r(state.best_eval) if state.generation else None,
            "best_mean_weights_generation": state.best_eval_generation,
            "solved_generation": state.solved_generation,
            "wall_s": round(state.rows[-1]["wall_s"], 2) if state.rows else 0.0}


def run_es(cfg: ESConfig, run_dir: str | Path, executor, progress: bool | None = None,
           on_generation: Callable[[dict], None] | None = None) -> dict:
    """Evolve the CartPole SNN with OpenAI-ES into ``run_dir`` (resuming the same run). Returns
    {"run_dir", "env", "method", "generations", "best_fitness" (best individual),
    "best_mean_weights_fitness", "best_mean_weights_generation", "solved_generation", "wall_s"}.
    ``on_generation(row)`` gets each generation's CSV row after its checkpoint is written.
    ``progress``: generations on a bar (a terminal) or a line per ~10% (None), or silent (False)."""
    run_dir = Path(run_dir)
    config = run_config(cfg)
    state = _start(run_dir, cfg, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
    for name in (GENERATIONS_CSV, INDIVIDUALS_CSV):  # rewritten from the checkpoint's history
        (run_dir / name).unlink(missing_ok=True)
    log = MetricsWriter(run_dir / GENERATIONS_CSV, FIELDS)
    individuals = MetricsWriter(run_dir / INDIVIDUALS_CSV, INDIVIDUAL_FIELDS)

    def write(row: dict, fitness: np.ndarray) -> None:
        log.write(row)
        for i, f in enumerate(fitness):
            individuals.write(dict(generation=row["generation"], index=i, fitness=_r(f)))

    report = Progress(cfg.generations, f"evolve es {ENV_ID}", unit="generation", initial=state.generation,
                      enabled=progress)
    try:
        for row, fit in zip(state.rows, state.fitness):
            write(row, fit)
        while state.solved_generation is None and state.generation < cfg.generations:
            t0 = time.perf_counter()
            g = state.generation + 1
            noise, genomes = population(state.theta, cfg, g)
            fitness, mean_fit = generation_fitness(state.theta, genomes, cfg, g, executor)
            state.best_fitness = max(state.best_fitness, float(fitness.max()))
            if mean_fit >= state.best_eval:
                state.weights, state.best_eval, state.best_eval_generation = state.theta.copy(), mean_fit, g
            confirm = None
            if cfg.target is not None and mean_fit >= cfg.target:
                confirm = confirm_fitness(state.theta, cfg, g, executor)
                if confirm >= cfg.target:  # the solving weights are the ones to keep
                    state.solved_generation = g
                    state.weights, state.best_eval, state.best_eval_generation = state.theta.copy(), mean_fit, g
            if state.solved_generation is None:
                grad = es_gradient(noise, fitness, cfg.sigma) - cfg.weight_decay * state.theta
                state.theta = state.adam.step(state.theta, grad, cfg.lr)
            wall = (state.rows[-1]["wall_s"] if state.rows else 0.0) + time.perf_counter() - t0
            row = dict(generation=g, best=_r(fitness.max()), mean=_r(fitness.mean()), std=_r(fitness.std()),
                       mean_weights=_r(mean_fit), confirm=None if confirm is None else _r(confirm),
                       wall_s=round(wall, 3))
            state.generation = g
            state.rows.append(row)
            state.fitness.append(fitness)
            _save(run_dir, state, cfg, config)
            write(row, fitness)
            report.update(1, best=row["best"], mean=row["mean"], mean_weights=row["mean_weights"])
            if on_generation is not None:
                on_generation(row)
    finally:
        report.close()
        log.close()
        individuals.close()
    return summary(run_dir, state)
