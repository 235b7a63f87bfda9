"""Training the spiking digit classifier into a run directory (SPEC R-ANA-MNIST), by either route:

- ``surrogate``: the LIF network of ``mnist.surrogate`` on Poisson-coded pixels, BPTT with a
  surrogate gradient, Adam on the cross-entropy of the output spike counts;
- ``convert``: the ReLU network of ``mnist.converted`` trained with Adam on the pixels, converted
  after every epoch (``tan`` or ``fast``) and classified by its output spike counts.

The run directory is like every other trainer's (``io.rundir.RunDir``):

    DIR/config.yaml             the resolved options (every default written out) and the data set
    DIR/metrics.csv             one row per epoch: epoch, step (updates so far), train_loss,
                                test_accuracy (the SNN's, at T), [convert: ann_test_accuracy],
                                epoch_seconds, wall_seconds (over every call of the run)
    DIR/checkpoint.safetensors  after every epoch, atomically: weights, Adam's state, counters
    DIR/evaluation.json         after the last epoch: the test accuracy, the two example digits
                                (most confident correct, most ambiguous) with their output spike
                                counts, the Poisson raster of the ambiguous one, [convert: the
                                accuracy against T and the ANN's]
    DIR/figures/                drawn from these files by ``analysis.mnist_plots``

Rerunning the same command resumes from the last finished epoch (a run killed mid-epoch redoes
that epoch); a larger ``epochs`` continues a finished run; other options are refused. Every random
stream is derived from the seed and the epoch (``runtime.derive_seed``): the shuffle, the
training spikes, the test spikes of epoch e, so a resumed run ends exactly where a straight one does.

Defaults per data set (``DEFAULTS``): the offline digits (8 x 8, 1,438 training images) get a
small network and small batches; MNIST gets 784-800-10, T = 25, batches of 128 and Adam at 5e-4
(the usual rate-coded LIF MLP, aiming at 97% or more in 10 epochs; seed 000 reports 96.84%; not
measured here, no MNIST files were at hand).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from spikeverse.convert import check_percentile
from spikeverse.device import resolve_device
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import (
    atomic_write_text,
    load_module_state,
    optimizer_from_flat,
    optimizer_to_flat,
    prefixed,
    unprefixed,
)
from spikeverse.io.rundir import METRICS, RunDir
from spikeverse.mnist.converted import CONVERSIONS, FINETUNE_STEPS, PERCENTILE, convert_classifier, relu_mlp
from spikeverse.mnist.data import Dataset, load_dataset
from spikeverse.mnist.readout import Evaluation, evaluate, window_of
from spikeverse.mnist.surrogate import ALPHA, SURROGATE, TAU, LIFClassifier, count_loss
from spikeverse.progress import Progress, announce
from spikeverse.runtime import derive_seed
from spikeverse.snn.encoders import poisson
from spikeverse.snn.surrogates import surrogate as make_surrogate

KIND = "mnist"  # checkpoint kind; config.yaml's "agent"
METHODS = ("surrogate", "convert")
EVALUATION = "evaluation.json"
DEFAULTS = {
    "digits": dict(timesteps=16, hidden=(256,), batch_size=32, lr=1e-3),
    "mnist": dict(timesteps=25, hidden=(800,), batch_size=128, lr=5e-4),
}
SWEEP_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64, 128)
SURROGATE_OPTIONS = ("tau", "surrogate", "alpha")
CONVERT_OPTIONS = ("conversion", "percentile", "sweep_timesteps", "finetune_steps")
FAST_OPTIONS = ("finetune_steps",)
RESUMABLE = ("epochs", "device")  # what a rerun may change
FIELDS = {
    "surrogate": ("epoch", "step", "train_loss", "test_accuracy", "epoch_seconds", "wall_seconds"),
    "convert": ("epoch", "step", "train_loss", "test_accuracy", "ann_test_accuracy", "epoch_seconds", "wall_seconds"),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class MNISTConfig:
    """The options of a run. None: the default (per data set, or per route); an option of the other
    route (or of the other conversion) must stay None, or it is refused."""

    method: str = "surrogate"
    data: str | None = None  # a folder of the MNIST IDX files; None: the offline default (digits)
    epochs: int = 10
    timesteps: int | None = None
    hidden: tuple[int, ...] | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    # surrogate route
    tau: float | None = None
    surrogate: str | None = None
    alpha: float | None = None
    # convert route
    conversion: str | None = None
    percentile: float | None = None
    sweep_timesteps: tuple[int, ...] | None = None
    finetune_steps: int | None = None

    def check(self) -> None:
        """Names, routes and values, before any work: one line for the first thing wrong."""
        if self.method not in METHODS:
            raise SpikeverseError(f"unknown --method {self.method!r} (choose surrogate or convert)")
        other = CONVERT_OPTIONS if self.method == "surrogate" else SURROGATE_OPTIONS
        stray = [flag(k) for k in other if getattr(self, k) is not None]
        if stray:
            raise SpikeverseError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to "
                                  f"--method {self.method}")
        if self.conversion is not None and self.conversion not in CONVERSIONS:
            raise SpikeverseError(f"unknown --conversion {self.conversion!r} (choose {' or '.join(CONVERSIONS)})")
        if self.method == "convert" and (self.conversion or "tan") != "fast":
            stray = [flag(k) for k in FAST_OPTIONS if getattr(self, k) is not None]
            if stray:
                raise SpikeverseError(f"{', '.join(stray)} does not apply to --conversion {self.conversion or 'tan'}")
        ints = dict(epochs=self.epochs, timesteps=self.timesteps, batch_size=self.batch_size,
                    finetune_steps=self.finetune_steps)
        for name, v in ints.items():
            if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
                raise SpikeverseError(f"{flag(name)} must be an integer >= 1, got {v}")
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise SpikeverseError(f"--seed must be an integer >= 0, got {self.seed}")
        if self.hidden is not None and (not self.hidden or any(int(h) != h or h < 1 for h in self.hidden)):
            raise SpikeverseError(f"--hidden needs one or more layer widths >= 1, got {list(self.hidden)}")
        if self.sweep_timesteps is not None and (not self.sweep_timesteps or
                                                 any(int(t) != t or t < 1 for t in self.sweep_timesteps)):
            raise SpikeverseError(f"--sweep-timesteps needs one or more T >= 1, got {list(self.sweep_timesteps)}")
        for name in ("lr", "tau"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise SpikeverseError(f"{flag(name)} must be > 0, got {v}")
        if self.surrogate is not None or self.alpha is not None:
            make_surrogate(self.surrogate or SURROGATE, self.alpha)  # an unknown name, alpha <= 0
        if self.percentile is not None:
            check_percentile(self.percentile)

    def resolved(self, dataset: str) -> "MNISTConfig":
        """Every None filled in: the data set's defaults and the route's."""
        d = DEFAULTS[dataset]
        out = replace(self, timesteps=self.timesteps or d["timesteps"],
                      hidden=tuple(self.hidden or d["hidden"]), batch_size=self.batch_size or d["batch_size"],
                      lr=self.lr or d["lr"])
        if self.method == "surrogate":
            return replace(out, tau=TAU if self.tau is None else self.tau, surrogate=self.surrogate or SURROGATE,
                           alpha=ALPHA if self.alpha is None else self.alpha)
        out = replace(out, conversion=self.conversion or "tan",
                      percentile=PERCENTILE if self.percentile is None else self.percentile,
                      sweep_timesteps=tuple(sorted(set(self.sweep_timesteps or SWEEP_TIMESTEPS))))
        if out.conversion == "fast":
            out = replace(out, finetune_steps=self.finetune_steps or FINETUNE_STEPS)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The options that apply (those of the other route, all None, are left out)."""
        d = asdict(self)
        for k in (CONVERT_OPTIONS if self.method == "surrogate" else SURROGATE_OPTIONS):
            d.pop(k)
        if self.method == "convert" and self.conversion != "fast":
            for k in FAST_OPTIONS:
                d.pop(k)
        for k in ("hidden", "sweep_timesteps"):
            if d.get(k) is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MNISTConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("hidden", "sweep_timesteps"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


class _Route:
    """What the two routes share: the network trained (``model``), Adam, one epoch of minibatches
    and the checkpoint's tensors; a route adds its loss and its spiking network."""

    def __init__(self, cfg: MNISTConfig, data: Dataset, device: torch.device, model: nn.Module):
        self.cfg, self.data, self.device = cfg, data, device
        self.model = model.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.train_x = data.train_x.flatten(1).to(device)
        self.train_y = data.train_y.to(device)

    @property
    def batches(self) -> int:
        return -(-self.train_x.shape[0] // self.cfg.batch_size)

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def train_epoch(self, epoch: int, report: Progress) -> float:
        """One pass over the training images in the epoch's own shuffled order; the mean loss."""
        cfg, n = self.cfg, self.train_x.shape[0]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, "shuffle", epoch)))
        gen = torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "train", epoch))
        self.model.train()
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size].to(self.device)
            loss = self.loss(self.train_x[idx], self.train_y[idx], gen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * idx.numel()
            report.update(1, loss=round(float(loss.detach()), 4))
        return total / n

    def after_epoch(self, epoch: int, progress: bool | None) -> dict[str, float]:
        """The epoch's test accuracies (the SNN's at T, and the ANN's for the converted route)."""
        raise NotImplementedError

    def spiking_layers(self) -> list[nn.Module]:
        raise NotImplementedError

    def test(self, timesteps: int, epoch: int) -> Evaluation:
        """The SNN on the test images, with epoch ``epoch``'s test spikes."""
        return evaluate(self.spiking_layers(), self.data.test_x, self.data.test_y, timesteps,
                        (self.cfg.seed, "test", epoch), self.device)

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        opt_t, opt_meta = optimizer_to_flat(self.optimizer)
        return {**prefixed("model", self.model.state_dict()), **prefixed("optimizer", opt_t)}, opt_meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: str) -> None:
        load_module_state(self.model, unprefixed("model", tensors), where)
        optimizer_from_flat(self.optimizer, unprefixed("optimizer", tensors), meta["optimizer"])


class _SurrogateRoute(_Route):
    def __init__(self, cfg: MNISTConfig, data: Dataset, device: torch.device):
        super().__init__(cfg, data, device, LIFClassifier(data.pixels, cfg.hidden, data.classes, tau=cfg.tau,
                                                          surrogate=cfg.surrogate, alpha=cfg.alpha))

    def loss(self, x, y, gen):
        return count_loss(self.model(poisson(x, self.cfg.timesteps, 1.0, gen)), y)

    def after_epoch(self, epoch, progress):
        self.model.eval()
        return dict(test_accuracy=self.test(self.cfg.timesteps, epoch).accuracy)

    def spiking_layers(self):
        return list(self.model.layers)


class _ConvertRoute(_Route):
    def __init__(self, cfg: MNISTConfig, data: Dataset, device: torch.device):
        super().__init__(cfg, data, device, relu_mlp(data.pixels, cfg.hidden, data.classes))
        self.snn = None  # the conversion of the current weights
        self.info: dict[str, Any] = {}

    def loss(self, x, y, gen):
        return F.cross_entropy(self.model(x), y)

    def convert(self, progress: bool | None) -> None:
        self.model.eval()
        self.snn, self.info = convert_classifier(self.model, self.data.train_x, conversion=self.cfg.conversion,
                                                 timesteps=self.cfg.timesteps, percentile=self.cfg.percentile,
                                                 finetune_steps=self.cfg.finetune_steps or FINETUNE_STEPS,
                                                 seed=self.cfg.seed, progress=progress)

    @torch.no_grad()
    def ann_accuracy(self) -> float:
        self.model.eval()
        x, y = self.data.test_x.flatten(1), self.data.test_y
        right = sum(int((self.model(x[i:i + 4096].to(self.device)).argmax(-1).cpu() == y[i:i + 4096]).sum())
                    for i in range(0, x.shape[0], 4096))
        return right / x.shape[0]

    def after_epoch(self, epoch, progress):
        self.convert(progress)
        return dict(test_accuracy=self.test(self.cfg.timesteps, epoch).accuracy, ann_test_accuracy=self.ann_accuracy())

    def spiking_layers(self):
        if self.snn is None:
            self.convert(False)
        return list(self.snn.layers)


ROUTES: dict[str, Callable[..., _Route]] = {"surrogate": _SurrogateRoute, "convert": _ConvertRoute}


def prepare(config: MNISTConfig) -> tuple[MNISTConfig, Dataset, torch.device]:
    """Check the options, resolve the device, read the data and fill in the defaults (no file is
    written; every user error is one line)."""
    config.check()
    device = resolve_device(config.device)
    data = load_dataset(config.data)
    cfg = config.resolved(data.name)
    cfg.check()
    return cfg, data, device


def _example_json(ev: Evaluation, data: Dataset, index: int) -> dict[str, Any]:
    return dict(ev.example(index), image=data.test_x[index].tolist())


def final_evaluation(route: _Route, cfg: MNISTConfig, data: Dataset, progress: bool | None) -> dict[str, Any]:
    """The figures' data after the last epoch: the test accuracy (epoch ``epochs``' test spikes,
    the metrics' last row), the two example digits, the raster of the ambiguous one, and for the
    converted route the accuracy against T (the same test spikes' seeds for every T)."""
    ev = route.test(cfg.timesteps, cfg.epochs)
    picks = ev.examples()
    out: dict[str, Any] = dict(method=cfg.method, dataset=data.name, epochs=cfg.epochs, timesteps=cfg.timesteps,
                               test_images=int(data.test_y.numel()), test_accuracy=ev.accuracy,
                               examples={k: _example_json(ev, data, i) for k, i in picks.items()})
    amb = picks["ambiguous"]
    window = window_of(data.test_x, amb, cfg.timesteps, (cfg.seed, "test", cfg.epochs), route.device)
    out["raster"] = dict(index=amb, label=int(data.test_y[amb]), image=data.test_x[amb].tolist(),
                         spikes=window.to(torch.uint8).tolist())
    if isinstance(route, _ConvertRoute):
        grid = sorted(set(cfg.sweep_timesteps) | {cfg.timesteps})
        curve = []
        with Progress(len(grid), "accuracy vs T", unit="T", enabled=progress) as p:
            for t in grid:
                acc = ev.accuracy if t == cfg.timesteps else route.test(t, cfg.epochs).accuracy
                curve.append(dict(timesteps=t, accuracy=acc))
                p.update(1, T=t, accuracy=round(acc, 4))
        out.update(ann_test_accuracy=route.ann_accuracy(), accuracy_vs_t=curve, conversion=cfg.conversion,
                   lambdas=route.info.get("lambdas"))
    return out


def train_mnist(config: MNISTConfig, out: str | Path, *, resume: bool = True,
                progress: bool | None = None, on_epoch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the classifier of ``config`` into the run directory ``out``, evaluate it
    and write ``evaluation.json``; returns a summary. ``on_epoch(epoch)`` is called after each
    epoch's checkpoint (tests stop a run there)."""
    cfg, data, device = prepare(config)
    config_dict = {"agent": KIND, **cfg.to_dict(), "dataset": data.describe()}
    run = RunDir(out, config_dict, accepts=(KIND,), label="MNIST", kind=KIND, method=cfg.method,
                 resumable=RESUMABLE, resume=resume)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        route = ROUTES[cfg.method](cfg, data, device)
    epoch, step, wall0 = 0, 0, 0.0
    if run.saved is not None:
        tensors, meta = run.saved
        route.restore(tensors, meta, str(run.checkpoint))
        epoch, step, wall0 = int(meta["epoch"]), int(meta["step"]), float(meta["wall_seconds"])
        if epoch > cfg.epochs:
            raise SpikeverseError(f"{run.path} has trained {epoch} epochs already; rerun with --epochs {epoch} "
                                  f"or more, or use another --out")
    run.begin()
    metrics = run.metrics(METRICS, FIELDS[cfg.method], step=step)
    t_call = time.perf_counter()
    announce(f"{cfg.method} route on {data.name} ({data.train_x.shape[0]} training, {data.test_x.shape[0]} test "
             f"images), T={cfg.timesteps}, epochs {epoch + 1}-{cfg.epochs} -> {run.path}"
             if epoch < cfg.epochs else f"{run.path}: {epoch} epochs done; evaluating", progress)
    try:
        with Progress(cfg.epochs * route.batches, f"train mnist {cfg.method} ({data.name})", unit="batch",
                      initial=epoch * route.batches, enabled=progress) as report:
            while epoch < cfg.epochs:
                t0 = time.perf_counter()
                loss = route.train_epoch(epoch + 1, report)
                epoch, step = epoch + 1, step + route.batches
                accs = route.after_epoch(epoch, progress)
                report.update(0, epoch=epoch, test_accuracy=round(accs["test_accuracy"], 4))
                now = time.perf_counter()
                wall = wall0 + now - t_call
                metrics.write(dict(epoch=epoch, step=step, train_loss=round(loss, 6), epoch_seconds=round(now - t0, 3),
                                   wall_seconds=round(wall, 3), **{k: round(v, 6) for k, v in accs.items()}))
                tensors, opt_meta = route.tensors()
                run.save(tensors, dict(method=cfg.method, epoch=epoch, step=step, wall_seconds=round(wall, 3),
                                       optimizer=opt_meta, config=config_dict))
                if on_epoch is not None:
                    on_epoch(epoch)
    finally:
        metrics.close()
    result = final_evaluation(route, cfg, data, progress)
    result["wall_seconds"] = round(wall0 + time.perf_counter() - t_call, 3)
    atomic_write_text(run.path / EVALUATION, json.dumps(result))
    summary = {k: result[k] for k in ("method", "dataset", "epochs", "timesteps", "test_accuracy")}
    if "accuracy_vs_t" in result:
        summary.update(conversion=result["conversion"], ann_test_accuracy=result["ann_test_accuracy"],
                       accuracy_vs_t={str(r["timesteps"]): r["accuracy"] for r in result["accuracy_vs_t"]})
    return dict(run_dir=str(run.path), **summary, wall_seconds=result["wall_seconds"])


def read_evaluation(run_dir: str | Path) -> dict[str, Any]:
    """The ``evaluation.json`` of a finished run (a one-line error if there is none)."""
    p = Path(run_dir) / EVALUATION
    if not p.is_file():
        raise SpikeverseError(f"{run_dir} has no {EVALUATION} yet (the run has not finished)")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        raise SpikeverseError(f"{p} is corrupted; rerun the same command to write it again") from None
