"""Run directories: resolved config, metrics, checkpoint, figures.

    DIR/config.yaml            the resolved configuration, every default written out
    DIR/metrics.csv            one row per finished training episode
    DIR/evals.csv              one row per model-selection evaluation during training
    DIR/checkpoint.safetensors weights, optimizer, counters, RNG states (see io.checkpoint)
    DIR/figures/               plots
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_text

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


def same_run(old: dict[str, Any], new: dict[str, Any], budget: str, section: str | None = None) -> bool:
    """Two configs describe the same run up to its budget: the key ``budget`` (in the mapping
    ``section`` of the config, if given), which a rerun may raise to continue the run."""
    def strip(c: dict[str, Any]) -> dict[str, Any]:
        if section is None:
            return {k: v for k, v in c.items() if k != budget}
        return {**c, section: {k: v for k, v in (c.get(section) or {}).items() if k != budget}}

    return strip(old) == strip(new)


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
