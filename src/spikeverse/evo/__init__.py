"""Optimizers that evolve spiking networks (SPEC R-EVO, seed 002) and where their evaluations run:
a genetic algorithm with DEAP's operators (``ga``), OpenAI-ES (``es``), and the executors that
evaluate a population in parallel, in local processes or on Ray (``executor``). The networks they
evolve live in ``spikeverse.models``."""

from spikeverse.evo.executor import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "make_executor"]
