"""The converted route: a ReLU network trained normally (Adam, cross-entropy on its outputs, the
pixel intensities as input), then converted to integrate-and-fire neurons by a conversion
method of ``spikeverse.convert`` and classified by its output spike counts.

    pixels -> Linear -> ReLU -> ... -> Linear (10 logits)        the ANN (a ``convert.FlatQNetwork``)
    Poisson pixels -> Linear -> IF -> ... -> Linear -> IF         the SNN (``convert.SpikingQNetwork``'s layers)

The conversion's statistics are the ANN's activations on the training images
(``convert.activation_stats``, given to the method as precomputed ``stats``: no environment is
played): ``tan`` (seed 001) normalizes every layer by the p-th percentile of its activations;
``fast`` first distils the ANN into a QCFS copy of itself on the training images (its
``finetune_steps``), then normalizes by the trained thresholds and starts every neuron at V_thr/2.
The output layer is normalized by the percentile of max(logit, 0), so its neurons spike below
one spike per step and their counts rank the classes. The SNN runs on the same Poisson input as
the surrogate route (``mnist.readout``): the first layer's mean current over the window is the
ANN's W x + b, so at large T the spike counts approach the ANN's decisions.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from spikeverse.convert import FlatQNetwork, activation_stats, convert_ann
from spikeverse.convert.spiking import SpikingQNetwork

CONVERSIONS = ("tan", "fast")
PERCENTILE = 99.9
FINETUNE_STEPS = 2_000


def relu_mlp(inputs: int, hidden: Sequence[int], classes: int = 10) -> FlatQNetwork:
    """Linear + ReLU layers of widths ``hidden``, then a Linear of ``classes`` logits, on flat pixels."""
    mods: list[nn.Module] = []
    widths = [int(inputs), *map(int, hidden)]
    for a, b in zip(widths, widths[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    mods.append(nn.Linear(widths[-1], int(classes)))
    return FlatQNetwork(mods, (int(inputs),))


def convert_classifier(ann: FlatQNetwork, train_images: torch.Tensor, *, conversion: str = "tan",
                       timesteps: int, percentile: float = PERCENTILE, finetune_steps: int = FINETUNE_STEPS,
                       seed: int = 0, progress: bool | None = None) -> tuple[SpikingQNetwork, dict[str, Any]]:
    """The SNN of ``ann`` by the conversion method ``conversion``, its statistics taken on
    ``train_images`` [N, ...]. Returns the SNN (count readout) and the method's summary."""
    x = train_images.flatten(1).to(ann.device)
    stats = activation_stats(ann, x, min_percentile=min(percentile, 99.0))
    options: dict[str, Any] = dict(percentile=percentile, timesteps=timesteps, seed=seed)
    if conversion == "fast":
        stats.observations = x
        options.update(finetune_steps=finetune_steps, finetune_frames=x.shape[0])
    snn, info = convert_ann(ann.eval(), None, method=conversion, readout="count", stats=stats, progress=progress,
                            **options)
    return snn, info
