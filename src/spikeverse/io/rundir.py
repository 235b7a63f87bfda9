"""Run directories: resolved config, metrics, checkpoint, figures, and the lifecycle every
trainer shares (:class:`RunDir`: open or refuse, resume or start fresh, metrics, atomic
checkpoints; :class:`Best`: the best weights so far).

    DIR/config.yaml            the resolved configuration, every default written out
    DIR/metrics.csv            one row per finished training episode
    DIR/evals.csv              one row per model-selection evaluation during training
    DIR/checkpoint.safetensors weights, optimizer, counters, RNG states (see io.checkpoint)
    DIR/figures/               plots
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import yaml

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint

CONFIG = "config.yaml"
METRICS = "metrics.csv"
EVALS = "evals.csv"
CHECKPOINT = "checkpoint.safetensors"


def write_config(run_dir: str | os.PathLike, config: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The config of ``run_dir`` (None when it has no config.yaml). A config.yaml that is not a
    YAML mapping (corrupted, truncated, foreign), or a file where the directory should be, is a
    one-line error, never silently replaced: every command reads run directories through here."""

    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise SpikeverseError(f"{run_dir} is a file, not a run directory; use another directory")
    p = Path(run_dir) / CONFIG
    if not p.is_file():
        return None
    try:
        cfg = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        reason = getattr(e, "problem", None) or getattr(e, "strerror", None) or type(e).__name__
        raise SpikeverseError(f"{p} is corrupted ({reason}); fix or remove it, or use another directory") from None
    if not isinstance(cfg, dict):
        raise SpikeverseError(f"{p} is corrupted (not a mapping of options); fix or remove it, or use another directory")
    return cfg


def require_config(run_dir: str | os.PathLike, what: str = "run") -> dict[str, Any]:
    """The config of ``run_dir``; a one-line error when it has none."""
    cfg = read_config(run_dir)
    if cfg is None:

        raise SpikeverseError(f"no {what} in {run_dir} (no {CONFIG})")
    return cfg


class MetricsWriter:
    """Append rows to a CSV file with a fixed header, flushing each row.

    ``truncate_after(step)`` drops rows logged after the step of the checkpoint a run resumes
    from, so a resumed run's metrics have no duplicated steps. ``fresh=True`` (a run starting
    from step 0: no checkpoint, e.g. killed before its first one) drops every old row instead.
    """

    def __init__(self, path: str | os.PathLike, fields: Iterable[str], *, fresh: bool = False):
        self.path = Path(path)
        self.fields = list(fields)
        if fresh:
            self.path.unlink(missing_ok=True)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.fields, extrasaction="ignore")
        if new:
            self._w.writeheader()
            self._f.flush()

    def truncate_after(self, step: int) -> None:
        self._f.close()
        rows = read_metrics(self.path)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            if int(float(r["step"])) <= step:
                w.writerow(r)
        atomic_write_text(self.path, buf.getvalue())
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.fields, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    p = Path(path)
    if p.is_dir():
        p = p / METRICS
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def run_kind(config: dict[str, Any]) -> str | None:
    """What trainer wrote a config: its "agent" (training, conversion) or "method" (evolution)."""
    return config.get("agent") or config.get("method")


def config_diff(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = (), prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs (nested mappings compared key by
    key), leaving out the keys ``ignore`` (dotted too), e.g. the budget a rerun may raise."""
    ignore = set(ignore)
    out = []
    for k in list(new) + [k for k in old if k not in new]:
        path = f"{prefix}{k}"
        if path in ignore:
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, ignore, path + ".")
        elif a != b:
            out.append(path)
    return out


def _article(label: str) -> str:
    """'a' or 'an' before ``label`` (an acronym such as ES or R-STDP is read letter by letter)."""
    acronym = label[:2].isupper() or label[1:2] == "-"
    return "an" if label[:1] in ("AEFHILMNORSX" if acronym else "aeiouAEIOU") else "a"


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


class RunDir:
    """The lifecycle every trainer shares, for one run directory.

    Opening it (the constructor) refuses, with one line, a file where the directory should be, a
    corrupted config.yaml, the run of another trainer (config.yaml's "agent"/"method" not in
    ``accepts``) and, when the directory holds a checkpoint: ``resume=False``, a missing
    config.yaml, or a run with other options (:func:`config_diff` of config.yaml and ``config``,
    up to the keys ``resumable`` a rerun may change, e.g. its budget). Then ``saved`` is the
    checkpoint to resume from (tensors, meta; its ``kind``, or one of several, and, if given, its
    ``method`` checked), or None: a fresh start (with the new options: there is nothing to continue), whose
    metrics files start empty (a run killed before its first checkpoint leaves rows that would
    be written again). Nothing is written before :meth:`begin`. ``upgrade`` turns a config written
    by an older version (config.yaml, the checkpoint's ``config``) into today's names before they
    are compared or used.

        run = RunDir(path, config, accepts=("ga",), label="evolve", kind="mountaincar_snn")
        ...                          # build what may still fail (an env, a network)
        run.begin()                  # the directory and its config.yaml
        log = run.metrics("metrics.csv", FIELDS, step=step)
        run.save(tensors, meta)      # atomically (io.checkpoint)
    """

    def __init__(self, path: str | os.PathLike, config: dict[str, Any], *, accepts: Iterable[str], label: str,
                 kind: str | tuple[str, ...], method: str | None = None, resumable: Iterable[str] = (),
                 resume: bool = True, upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.path, self.config, self.kind = Path(path), config, kind
        self.saved_config = read_config(self.path)  # a corrupted config.yaml is refused, never overwritten
        if upgrade is not None and self.saved_config is not None:
            self.saved_config = upgrade(self.saved_config)
        old = self.saved_config
        accepts = tuple(accepts)
        an = _article(label)
        if old is not None and run_kind(old) not in accepts:
            raise SpikeverseError(f"{self.path} holds a '{run_kind(old)}' run, not {an} {label} run "
                                  f"(expected '{run_kind(config) or accepts[0]}'); use another --out")
        self.saved: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        if not self.checkpoint.exists():
            return
        if not resume:
            raise SpikeverseError(f"{self.path} already holds a checkpoint (rerun without --no-resume to continue it)")
        if old is None:
            raise SpikeverseError(f"{self.path} holds a checkpoint but no {CONFIG}; use another --out")
        diff = config_diff(old, config, resumable)
        if diff:
            k = diff[0]
            raise SpikeverseError(f"{self.path} holds another {label} run, with other options ({k}="
                                  f"{_lookup(old, k)!r}, not {_lookup(config, k)!r}); use another --out or the same options")
        self.saved = load_checkpoint(self.checkpoint, kind=kind)
        if upgrade is not None and isinstance(self.saved[1].get("config"), dict):
            self.saved[1]["config"] = upgrade(self.saved[1]["config"])
        if method is not None and self.saved[1].get("method") != method:
            raise SpikeverseError(f"{self.path} holds a '{self.saved[1].get('method')}' {kind} checkpoint, "
                                  f"not {an} {label} one; use another --out")

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def resuming(self) -> bool:
        return self.saved is not None

    def begin(self) -> None:
        """Create the directory and write the resolved config (every default written out)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_config(self.path, self.config)

    def metrics(self, name: str, fields: Iterable[str], *, step: int | None = None,
                fresh: bool | None = None) -> MetricsWriter:
        """A CSV writer for ``name``: emptied on a fresh start (``fresh`` None: no checkpoint, or
        True: the caller rewrites it from the checkpoint's history); when resuming, the rows
        logged after ``step`` (the checkpoint's) are dropped."""
        fresh = not self.resuming if fresh is None else fresh
        writer = MetricsWriter(self.path / name, fields, fresh=fresh)
        if not fresh and step is not None:
            writer.truncate_after(step)
        return writer

    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Write the checkpoint atomically (the previous one or this one, never a mix); ``meta``
        gets this run's ``kind`` unless it names one (it must, when the run accepts several)."""
        save_checkpoint(self.checkpoint, tensors, meta if "kind" in meta else {"kind": self.kind, **meta})


@dataclass
class Best:
    """The best-scoring ``value`` so far and where it was seen (``at``): model selection.
    :meth:`offer` keeps a new value when its score is at least the best (``latest=True``: ties
    go to the latest) or above it (``latest=False``: the first keeps them)."""

    score: float = -math.inf
    value: Any = None
    at: Any = None

    def offer(self, score: float, value: Callable[[], Any], at: Any, *, latest: bool = True) -> bool:
        """Keep ``value()`` (called only then) if ``score`` beats the best; True if it did."""
        if score > self.score or (latest and score == self.score):
            self.score, self.value, self.at = float(score), value(), at
            return True
        return False

    @property
    def found(self) -> bool:
        return self.at is not None
