"""Which trainer accepts which env: refuse, before any work, an agent that cannot work on an
env's observation and action spaces."""

from __future__ import annotations

from gymnasium import spaces

from spikeverse.envs import make
from spikeverse.errors import SpikeverseError
from spikeverse.models.cartpole_snn import ENV_ID as CARTPOLE

AGENTS = ("dqn", "dsqn", "tabular", "rstdp")


def check_agent_env(agent: str, env_id: str, observation_space=None, action_space=None) -> None:
    """Refuse, before any work, an agent that cannot work on ``env_id``'s spaces: DQN/DSQN need
    array (Box) observations and discrete actions, tabular Q-learning discrete observations and
    actions, R-STDP plays CartPole-v1 only. Without spaces given, the env is made to read them."""
    if agent not in AGENTS:
        raise SpikeverseError(f"unknown agent '{agent}' (choose {', '.join(AGENTS)})")
    if agent == "rstdp":
        if env_id != CARTPOLE:
            raise SpikeverseError(f"--agent rstdp plays {CARTPOLE} only, got '{env_id}'")
        return
    if observation_space is None or action_space is None:
        env = make(env_id)
        try:
            observation_space, action_space = env.observation_space, env.action_space
        finally:
            env.close()
    if agent == "tabular":
        ok_obs, want = isinstance(observation_space, spaces.Discrete), "discrete observations"
        hint = ("use --agent dqn" if isinstance(observation_space, spaces.Box)
                and isinstance(action_space, spaces.Discrete) else "choose another env")
    else:
        ok_obs, want = isinstance(observation_space, spaces.Box), "array (Box) observations"
        hint = "use --agent tabular" if isinstance(observation_space, spaces.Discrete) else "choose another env"
    if not ok_obs:
        raise SpikeverseError(f"--agent {agent} needs {want} and discrete actions; {env_id} has "
                              f"{_space_name(observation_space)} observations ({hint})")
    if not isinstance(action_space, spaces.Discrete):
        raise SpikeverseError(f"--agent {agent} needs discrete actions; {env_id} has "
                              f"{_space_name(action_space)} actions")


def _space_name(space) -> str:
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    shape = getattr(space, "shape", None)
    return f"{type(space).__name__}{tuple(shape) if shape else ''}"
