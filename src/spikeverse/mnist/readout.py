"""Classification by output spike counts, shared by both routes (the surrogate-trained LIF network
and the converted IF network), and the Poisson input that both see.

Input: every pixel is one input neuron spiking with probability p = its intensity in [0, 1] at
each of T steps (``snn.encoders.poisson``, seed 000's Poisson rate coding: the brighter the
pixel, the more spikes). An evaluation draws its spikes batch by batch, each batch from its own
generator seeded by ``runtime.derive_seed(*key, batch)``: the spikes of any image can be drawn
again (the raster figure shows the very window the network classified), and the result does not
depend on what ran before.

Decision: the class whose output neuron spiked most; a tie between counts goes to the neuron of
the highest membrane potential at the end of the window (the one nearest its next spike, the
idea of seed 001's robust readout), and only then to the lowest class index. Margin: the top
count minus the runner-up's (0: a tie); the most ambiguous test digit is the one with the smallest
margin and, among those, the most spikes for the runner-up (two classes both strongly active, not
a silent output: seed 000 Fig. 23, a 9 that also looks like a 7, with spikes for the 7 as well).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from spikeverse.runtime import derive_seed
from spikeverse.snn.encoders import poisson
from spikeverse.snn.simulate import run_window

EVAL_BATCH = 1024
WINDOW_VALUES = 1 << 24  # input spikes per evaluation batch (T x B x pixels): 64 MiB of float32


def eval_batch_size(timesteps: int, pixels: int) -> int:
    """Images per evaluation batch: at most EVAL_BATCH, and a window of at most WINDOW_VALUES inputs."""
    return max(1, min(EVAL_BATCH, WINDOW_VALUES // max(1, timesteps * pixels)))


def encode(images: torch.Tensor, timesteps: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Poisson spikes [T, B, pixels] of images [B, ...] (intensities in [0, 1]), drawn on ``device``
    from a generator seeded with ``seed``."""
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    return poisson(images.flatten(1).to(device), timesteps, 1.0, gen)


def predict(counts: torch.Tensor, v_final: torch.Tensor | None = None) -> torch.Tensor:
    """The class per row of ``counts`` [B, C]: the most spikes; ties to the highest final membrane
    ``v_final`` [B, C] (then the lowest index)."""
    if v_final is None:
        return counts.argmax(-1)
    top = counts == counts.max(-1, keepdim=True).values
    return torch.where(top, v_final, torch.full_like(v_final, -torch.inf)).argmax(-1)


def margins(counts: torch.Tensor) -> torch.Tensor:
    """Top count minus the second count per row (0 for a tie)."""
    top2 = counts.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


@dataclass
class Evaluation:
    """Output spike counts and final membranes [N, C] of every image, and what follows from them."""

    counts: torch.Tensor
    v_final: torch.Tensor
    labels: torch.Tensor
    timesteps: int

    @property
    def predictions(self) -> torch.Tensor:
        return predict(self.counts, self.v_final)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).double().mean())

    def examples(self) -> dict[str, int]:
        """Indices of two images for the figures: ``correct``, the correctly classified one of the
        largest margin (the first such), and ``ambiguous``, the one of the smallest margin with the
        most runner-up spikes (the first such; right or wrong)."""
        m = margins(self.counts)
        second = self.counts.topk(2, dim=-1).values[:, 1]
        right = self.predictions == self.labels
        key = m * (float(self.counts.max()) + 1.0) - second  # (margin, -runner-up) in lexicographic order
        out = {"ambiguous": int(torch.argmin(key))}  # argmin: the first of the smallest
        if bool(right.any()):
            out["correct"] = int(torch.argmax(torch.where(right, m, torch.full_like(m, -1))))
        return out

    def example(self, index: int) -> dict:
        """One image's counts, final membranes, label, prediction and margin (JSON-ready)."""
        return dict(index=int(index), label=int(self.labels[index]), prediction=int(self.predictions[index]),
                    margin=float(margins(self.counts[index:index + 1])[0]),
                    counts=self.counts[index].tolist(), v_final=self.v_final[index].tolist())


@torch.no_grad()
def evaluate(layers: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor, timesteps: int,
             key: Sequence[int | str], device: torch.device | str = "cpu") -> Evaluation:
    """Simulate the spiking stack ``layers`` (its last stateful layer: one neuron per class) on
    ``images`` [N, ...] with Poisson input of ``timesteps`` steps, batch b's spikes drawn with the
    seed ``derive_seed(*key, b)``; returns every image's output counts and final membranes."""
    layers = list(layers)
    n = images.shape[0]
    bs = eval_batch_size(timesteps, images[0].numel())
    counts, v = [], []
    for b, i in enumerate(range(0, n, bs)):
        spikes = encode(images[i:i + bs], timesteps, derive_seed(*key, b), device)
        _, rec = run_window(layers, spikes, constant_input=False, record=True)
        counts.append(rec.spike_counts[-1].cpu())
        v.append(rec.final_v[-1].cpu())
    return Evaluation(torch.cat(counts).double(), torch.cat(v).double(), labels.cpu(), int(timesteps))


def window_of(images: torch.Tensor, index: int, timesteps: int, key: Sequence[int | str],
              device: torch.device | str = "cpu") -> torch.Tensor:
    """The Poisson window [T, pixels] that :func:`evaluate` with the same arguments drew for image ``index``."""
    bs = eval_batch_size(timesteps, images[0].numel())
    b, j = divmod(int(index), bs)
    spikes = encode(images[b * bs:(b + 1) * bs], timesteps, derive_seed(*key, b), device)
    return spikes[:, j].cpu()
