"""The grids of simulation lengths T that studies sweep, in one place.

Every grid is a slice of one range, so that results of the main job, of ``spikeverse sweep`` and of
benchmarks/conversion.py line up at the same T.
"""

from spikeverse.convert.timesteps import T_GRID  # seed 001's range, 4 to 500 (also what --timesteps auto searches)

SWEEP_TIMESTEPS = T_GRID[1:]  # `spikeverse sweep`: seed 001's range, 8 to 500
PIPELINE_TIMESTEPS = T_GRID[1:6]  # the main job's quick sweep, 8 to 128: beyond 128 the tan method on CartPole
#                                   changes little and each T costs minutes of play
METHOD_TIMESTEPS = {"naive": 100, "tan": 100, "fast": 32}  # the main job's T per method: seed 001 reports T = 100;
#                                                            the fast method's defaults were tuned at T = 32
