"""``spikeverse train``: train an agent into a run directory (resumes if it holds a checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


def default_run_dir(env_id: str, agent: str, seed: int) -> Path:
    return Path("runs") / env_id.replace("/", "-") / f"{agent}-seed{seed}"


@app.command()
def train(
    env: str = typer.Option("CartPole-v1", "--env", help="Environment id (CartPole-v1, MinAtar/Breakout, ALE/Breakout-v5, Taxi-v3, ...)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/ENV/AGENT-seedS)."),
    agent: Optional[str] = typer.Option(None, help="dqn, dsqn (directly trained spiking Q-network, seed 003), tabular, or rstdp (CartPole SNN learning by reward-modulated STDP, seed 002) (default: tabular for discrete observations, else dqn)."),
    steps: Optional[int] = typer.Option(None, help="Environment steps (tabular, rstdp: episodes). Default per env."),
    num_envs: Optional[int] = typer.Option(None, help="Parallel environments for collection."),
    double: Optional[bool] = typer.Option(None, "--double/--no-double", help="Double DQN."),
    per: Optional[bool] = typer.Option(None, "--per/--no-per", help="Prioritized replay (proportional, sum-tree)."),
    dueling: Optional[bool] = typer.Option(None, "--dueling/--no-dueling", help="Dueling head."),
    nstep: Optional[int] = typer.Option(None, help="n-step returns (1 = one-step)."),
    noisy: Optional[bool] = typer.Option(None, "--noisy/--no-noisy", help="NoisyNet head instead of epsilon-greedy."),
    c51: Optional[bool] = typer.Option(None, "--c51/--no-c51", help="Categorical distributional Q (51 atoms)."),
    rainbow: bool = typer.Option(False, "--rainbow", help="All Rainbow parts on (double, per, dueling, n-step 3, noisy, c51)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (tabular: the step size alpha; rstdp: eta)."),
    batch_size: Optional[int] = typer.Option(None, help="dqn, dsqn: transitions per update (default per env)."),
    train_freq: Optional[int] = typer.Option(None, help="dqn, dsqn: collection steps (of all --num-envs envs) between updates (default per env)."),
    gradient_steps: Optional[int] = typer.Option(None, help="dqn, dsqn: updates each time (default per env). Replay ratio = batch x gradient steps / (num envs x train freq) samples per frame."),
    precision: Optional[str] = typer.Option(None, help="dqn: float32 or bfloat16 (the update under autocast; weights, Adam and acting in float32); default per env (MinAtar: bfloat16)."),
    arch: Optional[str] = typer.Option(None, help="Network: mlp (image observations are flattened), minatar or nature (default per env)."),
    hidden: Optional[str] = typer.Option(None, help="Hidden layer widths, comma-separated, e.g. 256,256 (CNNs: the fully connected layer; rstdp: one width, default 64)."),
    timesteps: Optional[int] = typer.Option(None, help="dsqn: simulation steps T per decision (default 16; seed 003: 64)."),
    surrogate: Optional[str] = typer.Option(None, help="dsqn: surrogate gradient (atan, sigmoid, fast_sigmoid, ...; spikeverse surrogates lists them)."),
    alpha: Optional[float] = typer.Option(None, help="dsqn: the surrogate's width/slope parameter (default 2)."),
    tau: Optional[float] = typer.Option(None, help="dsqn: LIF time constant in steps (default 2)."),
    v_th: Optional[float] = typer.Option(None, "--v-th", "--vth", help="dsqn: LIF threshold (default 1)."),
    reset: Optional[str] = typer.Option(None, help="dsqn: hard (default, seed 003) or soft reset."),
    init_rate: Optional[float] = typer.Option(None, "--init-rate", help="dsqn: before the first update, scale each spiking layer's synapses so that it fires at this rate on replayed observations (default 0.1; 0 = PyTorch's initialisation)."),
    device: Optional[str] = typer.Option(None, help="dqn, dsqn: auto, cpu or cuda.", show_default="auto"),
    checkpoint_every: Optional[int] = typer.Option(None, help="Steps between checkpoints (default per env)."),
    eval_every: Optional[int] = typer.Option(None, help="Steps between model-selection evaluations (0 = off)."),
    eval_episodes: Optional[int] = typer.Option(None, help="dqn, dsqn: episodes of each model-selection evaluation (default per env)."),
    stop_score: Optional[float] = typer.Option(None, help="dqn, dsqn: stop once a model-selection evaluation's mean reaches this score, confirmed on twice the episodes (default per env: CartPole 500, others none)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the run directory's checkpoint."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train a DQN (with Rainbow switches), DSQN, tabular Q-learning or R-STDP agent."""
    from spikeverse.envs import env_family

    family = env_family(env)
    agent = agent or ("tabular" if family == "toy_text" else "dqn")
    _refuse_stray(agent, num_envs=num_envs, double=double, per=per, dueling=dueling, nstep=nstep, noisy=noisy,
                  c51=c51, rainbow=rainbow or None, arch=arch, hidden=hidden, device=device, lr=lr,
                  batch_size=batch_size, train_freq=train_freq, gradient_steps=gradient_steps, precision=precision,
                  eval_every=eval_every, checkpoint_every=checkpoint_every, eval_episodes=eval_episodes,
                  stop_score=stop_score)
    spiking_given = dict(timesteps=timesteps, surrogate=surrogate, alpha=alpha, tau=tau, v_th=v_th, reset=reset,
                         init_rate=init_rate)
    spiking = _spiking_options(agent, **spiking_given)  # refused for every agent but dsqn
    out = out or default_run_dir(env, agent, seed)
    if agent == "tabular":
        from spikeverse.rl.tabular import TabularConfig, train_tabular_run

        cfg = TabularConfig.for_env(env, seed=seed, episodes=steps, alpha=lr)
        summary = train_tabular_run(cfg, env, out, resume=resume, progress=progress)
    elif agent == "rstdp":
        from spikeverse.rl.rstdp import RSTDPConfig, train_rstdp

        cfg = RSTDPConfig.for_env(env, seed=seed, episodes=steps, eta=lr, eval_every=eval_every,
                                  checkpoint_every=checkpoint_every, network=_rstdp_network(hidden))
        summary = train_rstdp(cfg, out, resume=resume, progress=progress)
    elif agent in ("dqn", "dsqn"):
        from spikeverse.io.rundir import read_config
        from spikeverse.rl.config import RAINBOW, DQNConfig, keep_run_options
        from spikeverse.rl.train import train_dqn

        given = dict(total_steps=steps, num_envs=num_envs, double=double, per=per, dueling=dueling, nstep=nstep,
                     noisy=noisy, c51=c51, lr=lr, arch=arch, hidden=_widths(hidden), batch_size=batch_size,
                     train_freq=train_freq, gradient_steps=gradient_steps, precision=precision,
                     checkpoint_interval=checkpoint_every, eval_interval=eval_every, eval_episodes=eval_episodes,
                     stop_score=stop_score)
        cfg = DQNConfig.for_env(env, seed=seed, rainbow=rainbow, device=device or "auto", **given, **spiking)
        if resume:  # options not given go on as the run was trained (a default may have changed since)
            named = {k for k, v in given.items() if v is not None} | (set(RAINBOW) if rainbow else set())
            named |= {k for k, v in spiking_given.items() if v is not None}
            cfg = keep_run_options(cfg, read_config(out), named)
        res = train_dqn(cfg, out, resume=resume, progress=progress)
        summary = {"run_dir": str(res.run_dir), "env": env, "agent": agent, "steps": res.steps,
                   "episodes": res.episodes, "wall_s": round(res.wall_s, 2), "best_score": res.best_score,
                   "resumed_from": res.resumed_from}
    else:
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError(f"unknown agent '{agent}' (choose dqn, dsqn, tabular or rstdp)")
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"trained {summary['agent']} on {env} -> {summary['run_dir']}")


def _widths(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """'256,256' -> (256, 256); a one-line error for anything else."""
    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError(f"--hidden takes comma-separated integers, got '{text}'") from None


# the options of train that only some agents take (dqn and dsqn take all of them)
AGENT_OPTIONS = {"tabular": {"lr"}, "rstdp": {"lr", "hidden", "eval_every", "checkpoint_every"}}
SWITCHES = {"double", "per", "dueling", "noisy", "c51"}


def _refuse_stray(agent: str, **given) -> None:
    """A one-line error naming the given options that ``agent`` does not take."""
    if agent not in AGENT_OPTIONS:
        return
    stray = [("--no-" if k in SWITCHES and v is False else "--") + k.replace("_", "-")
             for k, v in given.items() if v is not None and k not in AGENT_OPTIONS[agent]]
    if stray:
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --agent {agent}")


def _rstdp_network(hidden: Optional[str]):
    """--hidden N of --agent rstdp: the CartPole SNN's hidden layer (one width)."""
    widths = _widths(hidden)
    if widths is None:
        return None
    if len(widths) != 1:
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError(f"--agent rstdp has one hidden layer: give --hidden N, got '{hidden}'")
    from spikeverse.models.cartpole_snn import CartPoleSNN

    return CartPoleSNN(hidden=widths[0])


def _spiking_options(agent: str, **given) -> dict:
    """The DQNConfig override of ``--agent dsqn``: ``spiking``, a ``SpikingConfig`` of the given
    options (each option is named as its field); the spiking options are refused for other agents."""
    set_ = {k: v for k, v in given.items() if v is not None}
    if agent != "dsqn":
        if set_:
            from spikeverse.errors import SpikeverseError

            raise SpikeverseError(f"{', '.join('--' + k.replace('_', '-') for k in set_)} apply to --agent dsqn only")
        return {}
    from spikeverse.snn.config import SpikingConfig

    return {"spiking": SpikingConfig(**set_)}
