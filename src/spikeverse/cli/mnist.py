"""``spikeverse mnist``: seed 000's spiking MNIST classifier (Poisson rate coding, spiking
neurons, classification by output spike counts) trained into a run directory, by BPTT with a
surrogate gradient or by converting a ReLU network; then its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app


def _ints(text: Optional[str], option: str) -> Optional[tuple[int, ...]]:
    """'256,256' -> (256, 256); a one-line error for anything else."""
    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        from spikeverse.errors import SpikeverseError

        raise SpikeverseError(f"{option} takes comma-separated integers, got '{text}'") from None


@app.command()
def mnist(
    out: Path = typer.Option(..., "--out", help="Run directory (rerun the same command to resume it)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of the four MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; plain or .gz). Default: scikit-learn's bundled 8x8 digits (offline; needs the 'mnist' extra: scikit-learn)."),
    method: str = typer.Option("surrogate", help="surrogate (LIF network trained by BPTT with a surrogate gradient) or convert (a ReLU network trained normally, converted to IF neurons)."),
    epochs: int = typer.Option(10, help="Passes over the training images; rerun with more to go on."),
    timesteps: Optional[int] = typer.Option(None, help="Poisson time steps T per image (default: digits 16, MNIST 25)."),
    hidden: Optional[str] = typer.Option(None, help="Hidden layer widths, comma-separated (default: digits 256, MNIST 800)."),
    batch_size: Optional[int] = typer.Option(None, help="Images per Adam step (default: digits 32, MNIST 128)."),
    lr: Optional[float] = typer.Option(None, help="Adam's learning rate (default: digits 1e-3, MNIST 5e-4)."),
    seed: int = typer.Option(0, help="Random seed (initialization, shuffling, every Poisson spike)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    tau: Optional[float] = typer.Option(None, help="surrogate: LIF membrane time constant in steps.", show_default="10"),
    surrogate: Optional[str] = typer.Option(None, help="surrogate: the surrogate gradient (spikeverse surrogates lists them).", show_default="fast_sigmoid"),
    alpha: Optional[float] = typer.Option(None, help="surrogate: the surrogate's slope/width parameter.", show_default="5"),
    conversion: Optional[str] = typer.Option(None, help="convert: the conversion method, tan (seed 001: percentile normalization) or fast (QCFS fine-tune first).", show_default="tan"),
    percentile: Optional[float] = typer.Option(None, help="convert: normalization percentile of the activations on the training images.", show_default="99.9"),
    sweep_timesteps: Optional[str] = typer.Option(None, "--sweep-timesteps", help="convert: the T of the accuracy-vs-T curve, comma-separated (T itself is added).", show_default="1,2,4,8,16,32,64,128"),
    finetune_steps: Optional[int] = typer.Option(None, help="convert with --conversion fast: QCFS fine-tune steps after every epoch.", show_default="2000"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the run directory's checkpoint."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal; a line per ~10% otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train seed 000's spiking digit classifier (surrogate gradient or conversion) and draw its figures."""
    from spikeverse.analysis.mnist_plots import mnist_figures
    from spikeverse.mnist.train import MNISTConfig, train_mnist

    config = MNISTConfig(method=method, data=None if data is None else str(data), epochs=epochs, timesteps=timesteps,
                         hidden=_ints(hidden, "--hidden"), batch_size=batch_size, lr=lr, seed=seed, device=device,
                         tau=tau, surrogate=surrogate, alpha=alpha, conversion=conversion, percentile=percentile,
                         sweep_timesteps=_ints(sweep_timesteps, "--sweep-timesteps"), finetune_steps=finetune_steps)
    summary = train_mnist(config, out, resume=resume, progress=progress)
    summary["figures"] = [str(p) for p in mnist_figures(out)]
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        extra = f" (ANN {100 * summary['ann_test_accuracy']:.2f}%)" if "ann_test_accuracy" in summary else ""
        typer.echo(f"{summary['method']} route on {summary['dataset']}: test accuracy "
                   f"{100 * summary['test_accuracy']:.2f}% at T={summary['timesteps']} after {summary['epochs']} "
                   f"epochs{extra} -> {summary['run_dir']}")
