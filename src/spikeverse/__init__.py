"""spikeverse: spiking neural networks for reinforcement learning.

Train a deep Q-network (DQN with every Rainbow part), turn it into a spiking network, and
measure what the spiking agent keeps and saves. See the README for the two-command start.
"""

__version__ = "0.1.0"
