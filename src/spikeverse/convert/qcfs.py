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

The frames are split three ways (seeded): the fine-tune trains on one part, picks its best
checkpoint by the agreement on a validation part, and reports the agreement on a test part
that neither training nor the selection has seen (the validation number is optimistic: it is the
maximum over the checkpoints).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from spikeverse.convert.graph import FlatQNetwork
from spikeverse.convert.spiking import SpikingQNetwork
from spikeverse.errors import SpikeverseError
from spikeverse.progress import Progress, announce
from spikeverse.rl.evaluation import q_gaps
from spikeverse.snn.neurons import IFNeuron


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
    validation_before: float  # argmax agreement of the QCFS network with the DQN on the validation frames, before
    validation_agreement: float  # ... of the selected (best on validation) checkpoint
    test_before: float  # the same on the test frames (seen by neither training nor the selection), before
    test_agreement: float  # ... and of the selected checkpoint: the number to report
    steps: int  # run in all
    frames: int
    splits: dict[str, torch.Tensor]  # indices into the observations: train, validation, test (disjoint)
    cycles: int = 1  # cosine cycles run, of the given steps each

    @property
    def split_sizes(self) -> dict[str, int]:
        return {k: int(v.numel()) for k, v in self.splits.items()}


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


class Staircase(nn.Module):
    """The spike count of an IF neuron (threshold V_thr, reset by subtraction, V(0) = phi V_thr)
    driven by a constant current x for L steps, times V_thr / L:

        h(x) = V_thr / L * clip(floor(x L / V_thr + phi), 0, L)

    (QCFS with lambda = V_thr and shift phi; phi = 1/2 is the fast method's V_thr/2 start)."""

    def __init__(self, levels: int, v_th: float = 1.0, phi: float = 0.0):
        super().__init__()
        self.levels, self.v_th, self.phi = int(levels), float(v_th), float(phi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x * (self.levels / self.v_th) + self.phi).floor().clamp(0, self.levels)
        return n * (self.v_th / self.levels)


class RateTwin(nn.Module):
    """A converted SNN's quantized twin (:func:`rate_twin`); a Policy."""

    def __init__(self, layers: list[nn.Module], num_actions: int):
        super().__init__()
        self.layers, self.num_actions = nn.Sequential(*layers), int(num_actions)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs.to(self.device, torch.float32))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self(obs)


def rate_twin(snn: SpikingQNetwork, levels: int) -> RateTwin:
    """The converted SNN's quantized twin at T = ``levels``: its weights, every hidden IF layer
    replaced by :class:`Staircase` (what the layer would emit over T steps if its input current were
    constant), the spiking output layer by its integrated current (the membrane and robust
    readouts rank actions by it). The first hidden layer of an analog-input SNN is exact; deeper
    layers differ by the SNN's timing error (their input spikes are not spread evenly over the
    window). So a decision the twin already gets wrong is the quantization's (the fine-tune's)
    error, and one only the SNN gets wrong is timing error."""
    if snn.neuron != "if" or snn.encoding != "analog":
        raise SpikeverseError(f"the rate twin needs IF neurons and analog input, got {snn.neuron} neurons and "
                              f"{snn.encoding} input")
    if levels < 1:
        raise SpikeverseError(f"the rate twin needs levels >= 1, got {levels}")
    phi = snn.v_init / snn.v_th
    body = list(snn.layers)[:-1]  # the last module is the spiking output layer
    return RateTwin([Staircase(levels, snn.v_th, phi) if isinstance(m, IFNeuron) else copy.deepcopy(m) for m in body],
                    snn.num_actions).eval()


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
                  margin_scale: str = "std", channel_wise: bool = True, train_levels: Sequence[int] | None = None,
                  validation: float = 0.1, test: float = 0.1, checks: int = 20, seed: int = 0,
                  cycles: int = 1, progress: bool | None = None) -> FineTuneResult:
    """Distil ``ann`` into its QCFS version (hidden thresholds start at ``lambdas``, e.g. the
    99.9th percentiles) on ``observations`` [N, ...]: ``steps`` Adam steps on minibatches of

        mean_a (Q_qcfs(s, a) - Q(s, a))^2 / s_Q^2  +  margin_weight * CE(Q_qcfs(s) / tau, argmax_a Q(s, a))

    (s_Q: the standard deviation of the DQN's Q-values; the cross-entropy term keeps the greedy
    action, which is what the agent's agreement measures; its temperature tau is s_Q with
    ``margin_scale="std"``, or with ``"gap"`` the median over the training frames of the DQN's
    gap between its best and second-best Q-value, so that the term weighs the close decisions
    and lets go of the clear ones even where that gap is far below s_Q), cosine learning-rate decay. The frames
    are split at random into ``validation`` and ``test`` fractions (at least one frame each) and
    the training rest; the agreement on the validation frames is checked ``checks`` times (at
    ``levels``) and the best weights are kept; the agreement of the kept weights on the test frames
    is the reported one. ``train_levels``: each step quantizes with one of these L's, drawn at
    random, so that the SNN is good at every T = L of them, not only at T = ``levels``.
    ``cycles`` (> 1): early stopping on the validation frames over a longer fine-tune: up to
    ``cycles`` cosine cycles of ``steps`` each follow one another (each from the best weights so
    far, the learning rate restarted) while the last one raised the validation agreement.
    ``progress``: the ``fine-tune`` reporter (None: a bar on a terminal, lines otherwise).
    Returns the fine-tuned weights, with ReLUs, and the trained lambdas."""
    if levels < 1:
        raise SpikeverseError(f"QCFS levels must be >= 1, got {levels}")
    if steps < 0:
        raise SpikeverseError(f"fine-tune steps must be >= 0, got {steps}")
    if int(cycles) != cycles or cycles < 1:
        raise SpikeverseError(f"the fine-tune's cycles must be a whole number >= 1, got {cycles}")
    check_margin_scale(margin_scale)
    device = ann.device
    if not (0.0 < validation < 1.0 and 0.0 < test < 1.0 and validation + test < 1.0):
        raise SpikeverseError(f"the fine-tune's validation and test fractions must be in (0, 1) with a sum < 1, "
                              f"got {validation} and {test}")
    obs = torch.as_tensor(observations).to(device, torch.float32)
    n = obs.shape[0]
    gen = torch.Generator().manual_seed(seed)
    splits = _split(n, validation, test, gen)
    train, val, test_obs = (obs[splits[k].to(device)] for k in ("train", "validation", "test"))
    teacher = ann.eval()
    with torch.no_grad():
        q_train = torch.cat([teacher(train[i:i + 4096]) for i in range(0, train.shape[0], 4096)])
    scale = q_train.std().clamp(min=1e-6)
    temperature = scale if margin_scale == "std" else median_q_gap(q_train).clamp(min=1e-6)
    target_a = q_train.argmax(-1)
    student = qcfs_network(ann, lambdas, levels, channel_wise).to(device).train()
    before = _agreement(student, teacher, val)
    test_before = _agreement(student, teacher, test_obs)
    best, best_state = before, copy.deepcopy(student.state_dict())
    batches = -(-train.shape[0] // batch_size)  # minibatches per pass over the training frames
    torch.manual_seed(seed)
    check_every = max(1, steps // max(1, checks))
    ran = 0
    report = Progress(steps * cycles, "fine-tune", unit="step", enabled=progress)
    try:
        while ran < cycles:  # one cosine cycle of `steps`, from the best weights so far
            if ran:
                student.load_state_dict(best_state)
            start = best
            opt = torch.optim.Adam(student.parameters(), lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
            ran += 1
            for i in range(steps):
                if i % batches == 0:
                    order = torch.randperm(train.shape[0], generator=gen).to(device)
                idx = order[(i % batches) * batch_size:(i % batches + 1) * batch_size]
                if train_levels:
                    _set_levels(student, int(train_levels[int(torch.randint(len(train_levels), (1,), generator=gen))]))
                loss = _distill_step(student, opt, sched, train[idx], q_train[idx], target_a[idx], scale, margin_weight,
                                     temperature)
                if (i + 1) % check_every == 0 or i + 1 == steps:  # selection: on the validation frames only
                    _set_levels(student, levels)
                    acc = _agreement(student, teacher, val)
                    if acc > best:
                        best, best_state = acc, copy.deepcopy(student.state_dict())
                    report.update(1, loss=round(loss.item(), 4), agreement=round(best, 4))
                else:
                    report.update(1)
            if ran < cycles and (best <= start or best >= 1.0):  # the cycle kept nothing (the next would start
                announce(f"fine-tune: early stop after {ran} of {cycles} cycles, validation agreement {best:.4f}",
                         progress)  # where it did), or all
                break
    finally:
        report.close()
    student.load_state_dict(best_state)
    _set_levels(student, levels)
    student.eval()
    test_after = _agreement(student, teacher, test_obs)  # the kept weights on frames never used before
    lams = [m.lam.detach().cpu().tolist() for m in student.layers if isinstance(m, QCFS)]
    return FineTuneResult(_with_relus(ann, student), lams, levels, before, best, test_before, test_after, ran * steps,
                          int(n), splits, ran)


MARGIN_SCALES = ("std", "gap")


def check_margin_scale(name: str) -> str:
    if name not in MARGIN_SCALES:
        raise SpikeverseError(f"unknown margin scale {name!r} (choose from {', '.join(MARGIN_SCALES)})")
    return name


def median_q_gap(q: torch.Tensor) -> torch.Tensor:
    """The median over states of Q(s, a1) - Q(s, a2), the best and second-best action's values."""
    return q_gaps(q).median()


def _split(n: int, validation: float, test: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Frame indices split at random into train, validation and test (at least one frame each)."""
    n_val, n_test = max(1, int(validation * n)), max(1, int(test * n))
    if n - n_val - n_test < 1:
        raise SpikeverseError(f"the QCFS fine-tune needs frames to train on besides its validation and test frames, "
                              f"got {n} observations")
    perm = torch.randperm(n, generator=gen)
    return {"train": perm[n_val + n_test:], "validation": perm[:n_val], "test": perm[n_val:n_val + n_test]}


def _distill_step(student: nn.Module, opt, sched, x: torch.Tensor, q_teacher: torch.Tensor, target_a: torch.Tensor,
                  scale: torch.Tensor, margin_weight: float, temperature: torch.Tensor) -> torch.Tensor:
    """One Adam step on the distillation loss (MSE of Q-values / scale + margin_weight * CE of
    Q-values / temperature on the teacher's greedy action); thresholds stay >= 1e-3. Returns the loss."""
    q = student(x)
    loss = F.mse_loss(q / scale, q_teacher / scale)
    if margin_weight:
        loss = loss + margin_weight * F.cross_entropy(q / temperature, target_a)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    with torch.no_grad():
        for m in student.layers:
            if isinstance(m, QCFS):
                m.lam.clamp_(min=1e-3)
    return loss


def _with_relus(ann: FlatQNetwork, student: nn.Module) -> FlatQNetwork:
    """A copy of ``ann`` (ReLUs) with the student's fine-tuned weights."""
    plain = copy.deepcopy(ann)
    for dst, src in zip(plain.layers, student.layers):
        if isinstance(dst, (nn.Conv2d, nn.Linear)):
            dst.load_state_dict(src.state_dict())
    return plain.eval()
