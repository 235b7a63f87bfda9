"""Quantization-aware fine-tune with clip-floor-shift activations (QCFS; Bu, Fang, Ding, Dai, Yu
& Huang, "Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency spiking neural
networks", ICLR 2022), used by the ``fast`` conversion method.

Every hidden ReLU of the DQN becomes

    h(x) = lambda / L * clip(floor(x L / lambda + 1/2), 0, L)                    (QCFS, phi = 1/2)

with a trainable threshold lambda per layer (straight-through gradient for the floor). An IF
neuron with threshold lambda, reset by subtraction and V(0) = lambda / 2, driven by a constant
current x for T = L steps, fires exactly floor(x T / lambda + 1/2) times (clipped to [0, T]): its
rate times lambda is h(x). So after the fine-tune the first spiking layer is exact at T = L, and
the deeper ones are close at T of a few L.

The fine-tune is a distillation: the QCFS network learns the *original* DQN's Q-values on frames
the DQN played (the frames collected for normalization), so that the spiking agent agrees with
the DQN the user trained, not with a new network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from spikeverse.convert.graph import FlatQNetwork
from spikeverse.errors import SpikeverseError


class QCFS(nn.Module):
    """h(x) = lambda/L clip(floor(x L/lambda + 1/2), 0, L); lambda trainable (one per layer, or
    one per unit/channel with ``channels``: dim 1 of the input), floor straight-through."""

    def __init__(self, lam: float, levels: int, channels: int | None = None):
        super().__init__()
        value = torch.tensor(float(lam)) if channels is None else torch.full((int(channels),), float(lam))
        self.lam = nn.Parameter(value)
        self.levels = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.lam if self.lam.dim() == 0 else self.lam.view(1, -1, *([1] * (x.dim() - 2)))
        y = (x / lam).clamp(0.0, 1.0) * self.levels
        y = y + ((y + 0.5).floor() - y).detach()  # floor(y + 1/2) forward, identity backward
        return y * (lam / self.levels)


@dataclass
class FineTuneResult:
    net: FlatQNetwork  # the fine-tuned network with plain ReLUs back in place (weights only)
    lambdas: list[float | list[float]]  # trained lambda per hidden layer (a list per channel if channel-wise)
    levels: int
    agreement_before: float  # held-out argmax agreement of the QCFS network with the DQN, before
    agreement_after: float  # ... and after the fine-tune
    steps: int
    frames: int


def qcfs_network(ann: FlatQNetwork, lambdas: list, levels: int, channel_wise: bool = False) -> FlatQNetwork:
    """A copy of ``ann`` whose hidden ReLUs are QCFS activations with the given lambdas (floats,
    or per-channel lists); ``channel_wise`` gives every unit/channel its own trainable lambda."""
    out = copy.deepcopy(ann)
    relus = [i for i, m in enumerate(out.layers) if isinstance(m, nn.ReLU)]
    if len(relus) != len(lambdas):
        raise SpikeverseError(f"{len(lambdas)} thresholds for {len(relus)} hidden layers")
    last_syn = None
    for i, m in enumerate(out.layers):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            last_syn = m
        if i in relus:
            lam = lambdas[relus.index(i)]
            n = last_syn.out_features if isinstance(last_syn, nn.Linear) else last_syn.out_channels
            per_channel = channel_wise or not isinstance(lam, (int, float))
            q = QCFS(1.0, levels, n if per_channel else None)
            with torch.no_grad():
                q.lam.copy_(torch.as_tensor(lam, dtype=torch.float32).expand_as(q.lam))
            out.layers[i] = q
    return out


def _set_levels(net: nn.Module, levels: int) -> None:
    for m in net.modules():
        if isinstance(m, QCFS):
            m.levels = levels


def _agreement(a: nn.Module, b: nn.Module, obs: torch.Tensor, batch: int = 2048) -> float:
    with torch.no_grad():
        same = sum(int((a(obs[i:i + batch]).argmax(-1) == b(obs[i:i + batch]).argmax(-1)).sum())
                   for i in range(0, obs.shape[0], batch))
    return same / max(obs.shape[0], 1)


def qcfs_finetune(ann: FlatQNetwork, observations: torch.Tensor, lambdas: list[float], *, levels: int = 32,
                  steps: int = 50_000, batch_size: int = 256, lr: float = 3e-3, margin_weight: float = 20.0,
                  channel_wise: bool = True, train_levels: Sequence[int] | None = None, holdout: float = 0.1,
                  checks: int = 20, seed: int = 0) -> FineTuneResult:
    """Distil ``ann`` into its QCFS version (hidden thresholds start at ``lambdas``, e.g. the
    99.9th percentiles) on ``observations`` [N, ...]: ``steps`` Adam steps on minibatches of

        mean_a (Q_qcfs(s, a) - Q(s, a))^2 / s_Q^2  +  margin_weight * CE(Q_qcfs(s) / s_Q, argmax_a Q(s, a))

    (s_Q: the standard deviation of the DQN's Q-values; the cross-entropy term keeps the greedy
    action, which is what the agent's agreement measures), cosine learning-rate decay. The
    agreement on ``holdout`` of the frames is checked ``checks`` times (at ``levels``); the best
    weights are kept. ``train_levels``: each step quantizes with one of these L's, drawn at
    random, so that the SNN is good at every T = L of them, not only at T = ``levels``.
    Returns the fine-tuned weights, with ReLUs, and the trained lambdas."""
    if levels < 1:
        raise SpikeverseError(f"QCFS levels must be >= 1, got {levels}")
    if steps < 0:
        raise SpikeverseError(f"fine-tune steps must be >= 0, got {steps}")
    device = ann.device
    obs = torch.as_tensor(observations).to(device, torch.float32)
    if obs.shape[0] < 2:
        raise SpikeverseError("the QCFS fine-tune needs at least 2 observations")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(obs.shape[0], generator=gen).to(device)
    n_val = max(1, int(holdout * obs.shape[0]))
    val, train = obs[perm[:n_val]], obs[perm[n_val:]]
    teacher = ann.eval()
    with torch.no_grad():
        q_train = torch.cat([teacher(train[i:i + 4096]) for i in range(0, train.shape[0], 4096)])
    scale = q_train.std().clamp(min=1e-6)
    target_a = q_train.argmax(-1)
    student = qcfs_network(ann, lambdas, levels, channel_wise).to(device).train()
    before = _agreement(student, teacher, val)
    best, best_state = before, copy.deepcopy(student.state_dict())
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    check_every = max(1, steps // max(1, checks))
    torch.manual_seed(seed)
    done = 0
    while done < steps:
        order = torch.randperm(train.shape[0], generator=gen).to(device)
        for i in range(0, train.shape[0], batch_size):
            idx = order[i:i + batch_size]
            if train_levels:
                _set_levels(student, int(train_levels[int(torch.randint(len(train_levels), (1,), generator=gen))]))
            q = student(train[idx])
            loss = F.mse_loss(q / scale, q_train[idx] / scale)
            if margin_weight:
                loss = loss + margin_weight * F.cross_entropy(q / scale, target_a[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for m in student.layers:
                    if isinstance(m, QCFS):
                        m.lam.clamp_(min=1e-3)
            done += 1
            if done % check_every == 0 or done == steps:
                _set_levels(student, levels)
                acc = _agreement(student, teacher, val)
                if acc > best:
                    best, best_state = acc, copy.deepcopy(student.state_dict())
            if done >= steps:
                break
    student.load_state_dict(best_state)
    student.eval()
    lams = [m.lam.detach().cpu().tolist() for m in student.layers if isinstance(m, QCFS)]
    plain = copy.deepcopy(ann)
    for dst, src in zip(plain.layers, student.layers):
        if isinstance(dst, (nn.Conv2d, nn.Linear)):
            dst.load_state_dict(src.state_dict())
    return FineTuneResult(plain.eval(), lams, levels, before, best, steps, int(obs.shape[0]))
