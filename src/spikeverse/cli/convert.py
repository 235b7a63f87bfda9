"""``spikeverse convert``: turn a trained DQN into a spiking network (SPEC R-CONV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError


def default_snn_dir(run_dir: Optional[Path], state_dict: Optional[Path], method: str, percentile: float) -> Path:
    """RUN_DIR/snn-tan-p99.9 for a run; FILE's folder/FILESTEM-snn-tan-p99.9 for a state dict."""
    tag = f"snn-{method}" if method == "naive" else f"snn-{method}-p{percentile:g}"
    if run_dir is not None:
        return run_dir / tag
    if state_dict is None:
        raise SpikeverseError("give a RUN_DIR or --state-dict FILE (with --env)")
    return state_dict.parent / f"{state_dict.stem}-{tag}"


# the flag each conversion option is given by, as (on, off) for switches
FLAGS = {"mixed_levels": ("--mixed-levels", "--single-level"), "channel_wise": ("--channel-wise", "--layer-wise"),
         "early_decision": ("--early-decision", "--no-early-decision"), "v_init": ("--v-init",)}
def flag(name: str, value: object = None) -> str:
    """The flag a conversion option is given by (``--no-...`` for a switch given False)."""
    names = FLAGS.get(name, ("--" + name.replace("_", "-"),))
    return names[1] if value is False and len(names) > 1 else names[0]


def _int_timesteps(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SpikeverseError(f"--timesteps takes an integer >= 1 or auto, got {value!r}") from None


def _auto(timesteps: Optional[str], target: Optional[float], frames: Optional[int]) -> Optional[dict]:
    """{"target", "frames"} for --timesteps auto; its two options are refused without it."""
    from spikeverse.convert import AUTO_FRAMES, AUTO_TARGET

    if timesteps != "auto":
        for name, value in (("--agreement-target", target), ("--heldout-frames", frames)):
            if value is not None:
                raise SpikeverseError(f"{name} applies to --timesteps auto only")
        return None
    return dict(target=AUTO_TARGET if target is None else target, frames=AUTO_FRAMES if frames is None else frames)


def _floats(text: Optional[str], option: str) -> Optional[list[float]]:
    """'0.05,0.3,1' -> [0.05, 0.3, 1.0]; a one-line error for anything else."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpikeverseError(f"{option} takes comma-separated numbers, got {text!r}") from None


@app.command()
def convert(
    run_dir: Optional[Path] = typer.Argument(None, help="A DQN run directory (spikeverse train); or use --state-dict."),
    state_dict: Optional[Path] = typer.Option(None, "--state-dict", help="A PyTorch state dict (.pth, e.g. SB3 policy.pth or a CleanRL model) instead of RUN_DIR; needs --env."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment id of the state dict's network."),
    method: str = typer.Option("tan", help="naive (seed 000: scaled weights, LIF, Poisson input, most spikes), tan (seed 001: IF, reset by subtraction, percentile normalization, robust readout) or fast (QCFS fine-tune, V_thr/2 start, analog readout)."),
    percentile: Optional[float] = typer.Option(None, help="tan, fast: p of the p-th percentile normalization (100 = max).", show_default="99.9"),
    timesteps: Optional[str] = typer.Option(None, help="Simulation steps T per decision (default: naive/tan 100, fast 32; seed 001 tables: 500), or auto: the smallest T of 4, 8, ..., 500 whose agreement with the DQN on held-out frames reaches --agreement-target."),
    agreement_target: Optional[float] = typer.Option(None, help="--timesteps auto: the agreement to reach.", show_default="0.99"),
    heldout_frames: Optional[int] = typer.Option(None, help="--timesteps auto: frames of the DQN's play (seed + 1000, not the collection's) the agreement is measured on.", show_default="2000"),
    readout: Optional[str] = typer.Option(None, help="Output readout: count, rate, robust (eq. 17) or membrane (analog). Default per method: naive count, tan robust, fast membrane."),
    levels: Optional[int] = typer.Option(None, help="fast: QCFS quantization levels L of the fine-tune (0 = no fine-tune).", show_default="32"),
    finetune_steps: Optional[int] = typer.Option(None, help="fast: Adam steps (batches of 256) of the QCFS distillation fine-tune.", show_default="50000"),
    finetune_cycles: Optional[int] = typer.Option(None, help="fast: early stopping over a longer fine-tune: up to this many cycles of --finetune-steps (each from the best weights, the learning rate restarted) while the last one raised the agreement on the validation frames.", show_default="1"),
    finetune_frames: Optional[int] = typer.Option(None, help="fast: frames of the DQN's own play the fine-tune learns from (default 300,000, at most 1 GiB of observations)."),
    finetune_epsilons: Optional[str] = typer.Option(None, "--finetune-epsilons", help="fast: the fine-tune's frames played in equal parts at these epsilons (comma-separated, e.g. 0.05,0.3,1: states off the DQN's own path too); default: --epsilon only."),
    margin_scale: Optional[str] = typer.Option(None, "--margin-scale", help="fast: temperature of the fine-tune's cross-entropy on the DQN's action: std (of the DQN's Q-values) or gap (its median gap between the best two actions: weighs close decisions).", show_default="std"),
    mixed_levels: Optional[bool] = typer.Option(None, "--mixed-levels/--single-level", help="fast: fine-tune at L, L/2, ... 4 levels drawn per step (good at every T) or at L only.", show_default="mixed-levels"),
    channel_wise: Optional[bool] = typer.Option(None, "--channel-wise/--layer-wise", help="fast: one threshold per unit/channel or per layer.", show_default="channel-wise"),
    v_init: Optional[float] = typer.Option(None, "--v-init", help="fast: initial membrane potential as a fraction of the threshold.", show_default="0.5"),
    early_decision: Optional[bool] = typer.Option(None, "--early-decision/--no-early-decision", help="fast: stop a decision's window once its argmax cannot change.", show_default="no-early-decision"),
    scales: Optional[str] = typer.Option(None, help="naive: weight scale per layer (comma-separated; then 10x more per further layer).", show_default="10,100"),
    tau: Optional[float] = typer.Option(None, help="naive: LIF membrane time constant in steps.", show_default="10.0"),
    frames: int = typer.Option(15_000, help="Frames played by the DQN to collect activations (seed 001: up to 15,000)."),
    epsilon: float = typer.Option(0.05, help="Epsilon while collecting frames."),
    seed: int = typer.Option(0, help="Seed of the collection episodes."),
    frames_from: Optional[Path] = typer.Option(None, "--frames-from", help="A .npy array of observations [N, *observation shape] (e.g. the DQN's training replay), added to the frames played: the statistics cover both, and so does the fast method's fine-tune. Its path, N and sha256 are saved with the SNN."),
    out: Optional[Path] = typer.Option(None, help="SNN directory (default RUN_DIR/snn-METHOD-pP)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal; a line per ~10% otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Convert a DQN to a spiking Q-network and save it as a run directory (evaluate it with spikeverse evaluate)."""
    from spikeverse.convert import check_options, convert_source, refuse_stray_options
    from spikeverse.device import resolve_device

    auto = _auto(timesteps, agreement_target, heldout_frames)
    if auto is not None:
        timesteps = None
    elif timesteps is not None:
        timesteps = _int_timesteps(timesteps)
    eps_list, scale_list = _floats(finetune_epsilons, "--finetune-epsilons"), _floats(scales, "--scales")
    # the method's own options, only those given (the method's defaults apply to the rest)
    given = dict(percentile=percentile, timesteps=timesteps, levels=levels, finetune_steps=finetune_steps,
                 finetune_cycles=finetune_cycles, finetune_frames=finetune_frames, finetune_epsilons=eps_list,
                 margin_scale=margin_scale,
                 channel_wise=channel_wise, mixed_levels=mixed_levels, v_init=v_init,
                 early_decision=early_decision, scales=scale_list, tau=tau)
    options = {k: v for k, v in given.items() if v is not None}
    check_options(method)  # an unknown method first, then the options it does not take, then their values
    refuse_stray_options([method], options, f"--method {method}", name=flag)
    check_options(method, **options)
    options.update(frames=frames, epsilon=epsilon, seed=seed)  # every method takes these
    target = out or default_snn_dir(run_dir, state_dict, method, 99.9 if percentile is None else percentile)
    summary = convert_source(target, run_dir, state_dict=state_dict, env_id=env, method=method, readout=readout,
                             device=resolve_device(device), progress=progress, auto=auto, frames_from=frames_from,
                             **options)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        if summary["lambdas"] is not None:
            scaling = f"p={summary['percentile']:g}, lambdas " + ", ".join(
                f"{x:.4g}" if isinstance(x, (int, float)) else f"{len(x)} per channel, mean {sum(x) / len(x):.4g}"
                for x in summary["lambdas"])
        else:
            scaling = "scales " + ", ".join(f"{x:g}" for x in summary["scales"])
        typer.echo(f"{summary['env_id']}: converted ({summary['method']}, T={summary['timesteps']}, "
                   f"{summary['readout']} readout; {scaling}) -> {summary['snn_dir']}")
        if auto is not None:
            a = summary["timesteps_auto"]
            curve = ", ".join(f"T={p['timesteps']}: {p['agreement']:.3f}" for p in a["curve"])
            verdict = "reaches" if a["reached"] else "does not reach; the best T is kept"
            typer.echo(f"agreement on {a['heldout_frames']} held-out frames: {curve} ({verdict} {a['target']:g})")
