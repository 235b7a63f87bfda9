"""Optimizers that evolve spiking networks (SPEC R-EVO, seed 002) and where their evaluations run:
ask/tell optimizers, a genetic algorithm with DEAP's operators (``ga``) and OpenAI-ES (``es``),
one driver that runs either over a ``Problem`` in a resumable run directory (``run``), and the
executors that evaluate a population in parallel, in local processes or on Ray (``executor``).
The networks they evolve (the problems) live in ``spikeverse.models``."""

from spikeverse.evo.executor import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "make_executor"]
