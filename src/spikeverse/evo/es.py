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
how the work is split: the genomes (each with its episodes) are cut into one chunk per worker,
each chunk one batched simulation (``CartPoleProblem.fitness``), and a network's episode does not
depend on its batch (exact synaptic sums), so any number of workers gives the same run.

The run (``evo.run.run_evolution``) and its directory: config.yaml (method "es", env, the ES
options, the network), generations.csv (generation, best, mean, std of the population's fitness,
mean_weights = the mean's evaluation, confirm = its confirmation when it ran, wall_s),
individuals.csv, and checkpoint.safetensors of kind ``models.cartpole_snn.KIND``: "weights" (the
solving mean weights, else those with the best evaluation so far, latest on ties: what
``spikeverse evaluate`` plays), the next generation's mean, Adam's m, v and t, the history (rows
and every individual's fitness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.stats import rankdata

from spikeverse.errors import SpikeverseError, require_all
from spikeverse.evo.run import History, round6, run_evolution
from spikeverse.evo.run import load_run as _load_run
from spikeverse.io.rundir import Best
from spikeverse.models.cartpole_snn import ENV_ID, KIND, MAX_STEPS, CartPoleProblem, CartPoleSNN, SNNPolicy
from spikeverse.runtime import derive_seed

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


# --- the optimizer -----------------------------------------------------------------------------


class ES:
    """OpenAI-ES as an ask/tell optimizer (``evo.run``) over a problem whose keys name what a
    genome plays (:class:`~spikeverse.models.cartpole_snn.CartPoleProblem`): generation g asks
    for its antithetic population (keys (seed, g, i)) and the mean theta (key (seed, g, "eval"));
    when the mean reaches ``target`` it asks for its confirmation (key (seed, g, "confirm"))
    before the update. Keeps the mean weights with the best evaluation (latest on ties; the
    solving ones when the run is solved)."""

    method, label, kind, fields = "es", "ES", KIND, ("mean_weights", "confirm")

    def __init__(self, config: ESConfig):
        self.config = config
        self.generation = 0
        self.theta: np.ndarray | None = None  # the next generation's mean
        self.adam: Adam | None = None
        self.weights = Best()  # the mean weights to keep, by their evaluation; at = generation
        self.best_fitness = -np.inf  # of any individual
        self.solved_generation: int | None = None
        self.history = History()
        self._noise: np.ndarray | None = None
        self._pending: tuple[np.ndarray, float] | None = None  # awaiting the confirmation

    @classmethod
    def from_run_config(cls, config: dict) -> "ES":
        return cls(ESConfig.from_dict({**config["es"], "network": config["network"]}))

    def options(self) -> dict:
        return {k: v for k, v in self.config.to_dict().items() if k != "network"}

    def initialize(self, problem) -> None:
        self.theta = problem.initial_population(np.random.default_rng(derive_seed(self.config.seed, 0, "init")), 1)[0]
        self.adam = Adam.zeros(len(self.theta))
        self.weights = Best(-np.inf, self.theta.copy(), None)

    def ask(self) -> tuple[np.ndarray, list]:
        g, seed = self.generation + 1, self.config.seed
        if self._pending is not None:
            return self.theta[None], [(seed, g, "confirm")]
        self._noise, genomes = population(self.theta, self.config, g)
        keys = [(seed, g, i) for i in range(len(genomes))] + [(seed, g, "eval")]
        return np.concatenate([genomes, self.theta[None]]), keys

    def tell(self, fitness: np.ndarray) -> tuple[np.ndarray, dict] | None:
        g, target = self.generation + 1, self.config.target
        if self._pending is None:
            individuals, mean_fit = fitness[:-1].copy(), float(fitness[-1])
            self.best_fitness = max(self.best_fitness, float(individuals.max()))
            self.weights.offer(mean_fit, self.theta.copy, g)
            if target is not None and mean_fit >= target:
                self._pending = (individuals, mean_fit)
                return None
            return self._update(individuals, mean_fit, None)
        (individuals, mean_fit), self._pending = self._pending, None
        confirm = float(fitness[0])
        if confirm >= target:  # the solving weights are the ones to keep
            self.solved_generation = g
            self.weights = Best(mean_fit, self.theta.copy(), g)
        return self._update(individuals, mean_fit, confirm)

    def _update(self, individuals: np.ndarray, mean_fit: float, confirm: float | None) -> tuple[np.ndarray, dict]:
        """The Adam step on the shaped gradient (unless solved); the generation is finished."""
        cfg = self.config
        if self.solved_generation is None:
            grad = es_gradient(self._noise, individuals, cfg.sigma) - cfg.weight_decay * self.theta
            self.theta = self.adam.step(self.theta, grad, cfg.lr)
        self.generation += 1
        return individuals, {"mean_weights": round6(mean_fit), "confirm": None if confirm is None else round6(confirm)}

    def state_dict(self, config: dict) -> tuple[dict[str, torch.Tensor], dict]:
        w = self.weights
        extra = {"es.theta": torch.from_numpy(self.theta), "es.adam_m": torch.from_numpy(self.adam.m),
                 "es.adam_v": torch.from_numpy(self.adam.v),
                 "history.fitness": torch.from_numpy(np.stack(self.history.fitness))}
        meta = {"method": "es", "config": config, "generation": self.generation, "adam_t": self.adam.t,
                "history": self.history.rows,
                "best_eval": w.score, "best_eval_generation": w.at,
                "best_fitness": self.best_fitness, "solved_generation": self.solved_generation,
                "weights": f"mean weights of generation {w.at} (best mean-weights fitness {w.score:g})",
                "rng": {"noise": "derive_seed(seed, generation, 'noise') per generation",
                        "next_noise_seed": derive_seed(self.config.seed, self.generation + 1, "noise")}}
        return SNNPolicy(self.config.network, w.value).checkpoint(meta, extra)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.theta = tensors["es.theta"].numpy().copy()
        self.adam = Adam(tensors["es.adam_m"].numpy().copy(), tensors["es.adam_v"].numpy().copy(), int(meta["adam_t"]))
        self.generation = int(meta["generation"])
        rows = list(meta["history"])
        self.history = History(list(tensors["history.fitness"].numpy()), rows, [r["wall_s"] for r in rows])
        self.weights = Best(float(meta["best_eval"]), tensors["weights"].numpy().copy(), meta["best_eval_generation"])
        self.best_fitness = float(meta["best_fitness"])
        self.solved_generation = meta["solved_generation"]

    def summary(self) -> dict:
        done = self.generation > 0
        return {"best_mean_weights_fitness": round6(self.weights.score) if done else None,
                "best_mean_weights_generation": self.weights.at}


# --- the run -------------------------------------------------------------------------------------


def problem(cfg: ESConfig) -> CartPoleProblem:
    """The CartPole problem of an ES config: its network, episodes per individual and for the mean."""
    return CartPoleProblem(cfg.network, cfg.episodes, cfg.eval_episodes, cfg.confirm_episodes, cfg.max_steps)


def run_es(cfg: ESConfig, run_dir: str | Path, executor, progress: bool | None = None,
           on_generation: Callable[[dict], None] | None = None) -> dict:
    """Evolve the CartPole SNN with OpenAI-ES into ``run_dir`` (:func:`~spikeverse.evo.run.run_evolution`).
    Returns {"run_dir", "env", "method", "generations", "best_fitness" (best individual),
    "best_mean_weights_fitness", "best_mean_weights_generation", "solved_generation", "wall_s"}.
    ``on_generation(row)`` gets each generation's CSV row after its checkpoint is written."""
    callback = None if on_generation is None else (lambda row, fitness: on_generation(row))
    return run_evolution(problem(cfg), ES(cfg), run_dir, executor, env_id=ENV_ID, progress=progress,
                         on_generation=callback)


def load_run(run_dir: str | Path) -> tuple[dict, ES]:
    """The config and the restored :class:`ES` of an ES run directory (for plots and reports)."""
    return _load_run(run_dir, ES)
