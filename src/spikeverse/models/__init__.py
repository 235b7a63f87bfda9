"""Task spiking networks (seed 002): the Mountain Car SNN evolved by the GA (``mountaincar_snn``)
and the CartPole SNN shared by the ES and R-STDP (``cartpole_snn``), with their genomes
(``genome``) and their checkpoints. Used by ``evo`` (optimizers), ``rl`` (R-STDP) and ``agents``
(evaluation) alike."""
