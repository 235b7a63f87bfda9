"""The grids of simulation lengths T that studies sweep, in one place.

Every grid is a slice of one range, so that results of the main job, of ``spikeverse sweep`` and of
benchmarks/conversion.py line up at the same T.
"""

T_GRID = (4, 8, 16, 32, 64, 128, 256, 500)  # seed 001 Fig. 1a sweeps T up to 500; 4 shows where the fast method starts
SWEEP_TIMESTEPS = T_GRID[1:]  # `spikeverse sweep`: seed 001's range, 8 to 500
PIPELINE_TIMESTEPS = T_GRID[1:6]  # the main job's quick sweep, 8 to 128: beyond 128 the tan method on CartPole
#                                   changes little and each T costs minutes of play
METHOD_TIMESTEPS = {"naive": 100, "tan": 100, "fast": 32}  # the main job's T per method: seed 001 reports T = 100;
#                                                            the fast method's defaults were tuned at T = 32
