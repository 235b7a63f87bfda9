"""Progress of long work: a tqdm bar on a terminal, a plain log line about every 10% otherwise.

Every phase that can take more than a few seconds (training, collecting frames, a fine-tune,
evaluation episodes, sweeps, generations) reports through :class:`Progress`, so a run under CI
or redirected to a file still says where it is, and an interactive one shows a bar.

    with Progress(total, "fine-tune", unit="step") as p:
        for i in range(total):
            ...
            p.update(1, loss=0.12)

``enabled`` None (the default) means: a bar on a terminal, log lines otherwise; False silences it
(``--no-progress``); True forces the bar. Library functions take ``progress: bool | None`` and
open their phase with :func:`reporter` (which also accepts a caller's own Progress or tqdm bar);
:func:`announce` prints the one line that opens a phase.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Count ``total`` units of the phase ``desc``; a bar on a tty, else a line per ~10%."""

    def __init__(self, total: int, desc: str, *, unit: str = "it", initial: int = 0,
                 enabled: bool | None = None, file=None):
        self.total, self.desc, self.unit = max(0, int(total)), desc, unit
        self.n = int(initial)
        self.file = file or sys.stderr
        self.fields: dict[str, Any] = {}
        self.silent = enabled is False
        tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.bar = None
        if enabled is True or (enabled is None and tty):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=unit, dynamic_ncols=True,
                            file=self.file, leave=False)
        self._step = max(1, -(-self.total // 10))  # ceil: at most ~10 lines
        self._next = (self.n // self._step + 1) * self._step
        self._logged = self.n  # the count of the last plain line (or the start)

    def due(self, n: int = 1) -> bool:
        """Whether an ``update(n)`` would print a plain line (to compute costly fields only then)."""
        if self.silent:
            return False
        return self.bar is not None or self.n + n >= self._next or self.n + n == self.total

    def update(self, n: int = 1, **fields: Any) -> None:
        """Advance by ``n`` units; ``fields`` (e.g. loss=0.1) are shown with the bar or the line."""
        self.n += n
        if fields:
            self.fields.update(fields)
        if self.silent:
            return
        if self.bar is not None:
            self.bar.update(n)
            if fields:
                self.bar.set_postfix(self.fields, refresh=False)
        elif self.n >= self._next or self.n == self.total:
            self._next = (self.n // self._step + 1) * self._step
            self.log_line()

    def log_line(self) -> None:
        self._logged = self.n
        extra = "".join(f" {k}={_fmt(v)}" for k, v in self.fields.items())
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}{extra}", file=self.file, flush=True)

    def close(self) -> None:
        """End the phase; a plain reporter that stopped short (early stop, time budget, an
        interrupt) prints where it stopped."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.silent and self.n != self._logged:
            self.log_line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class _Borrowed:
    """A caller's reporter (a Progress, a tqdm bar) used by a library phase and left open."""

    def __init__(self, obj: Any):
        self.obj = obj

    def update(self, n: int = 1, **fields: Any) -> None:
        if isinstance(self.obj, Progress):
            self.obj.update(n, **fields)
            return
        self.obj.update(n)
        if fields and hasattr(self.obj, "set_postfix"):
            self.obj.set_postfix(fields, refresh=False)

    def due(self, n: int = 1) -> bool:
        return self.obj.due(n) if hasattr(self.obj, "due") else True

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Borrowed":
        return self

    def __exit__(self, *exc) -> None:
        pass


def reporter(progress: Any, total: int, desc: str, *, unit: str = "it", initial: int = 0):
    """The reporter of a library phase: ``progress`` None/True/False gives a new :class:`Progress`
    (closed by the ``with`` block); an object with ``update`` (a Progress or tqdm bar the caller
    keeps over several phases) is used as it is and left open."""
    if progress is None or isinstance(progress, bool):
        return Progress(total, desc, unit=unit, initial=initial, enabled=progress)
    return _Borrowed(progress)


def announce(message: str, progress: Any = None, file=None) -> None:
    """The line that opens a long phase (on stderr), unless progress is off (False)."""
    if progress is not False:
        print(message, file=file or sys.stderr, flush=True)
