"""Studies: grids of runs over agents, time steps and seeds. ``pipeline`` is the main job (the
smallest study: train, convert, evaluate, report on one env); ``sweep`` measures a converted
SNN over a grid of T (and thresholds) against its source DQN."""
