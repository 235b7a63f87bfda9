"""Evolution of spiking networks (SPEC R-EVO, seed 002): the Mountain Car SNN and its fitness
(``mountaincar``), a genetic algorithm with DEAP's operators and resumable run directories
(``ga``), and the executors that evaluate a population in parallel, in local processes or on
Ray (``executor``)."""

from spikeverse.evo.executor import EXECUTORS, derive_seed, make_executor
from spikeverse.evo.mountaincar import MountainCarSNN

__all__ = ["EXECUTORS", "MountainCarSNN", "derive_seed", "make_executor"]
