"""Progress of long work: a tqdm bar on a terminal, a plain log line about every 10% otherwise.

Every phase that can take more than a few seconds (training, collecting frames, a fine-tune,
evaluation episodes, sweeps, generations) reports through :class:`Progress`, so a run under CI
or redirected to a file still says where it is, and an interactive one shows a bar.

    with Progress(total, "fine-tune", unit="step") as p:
        for i in range(total):
            ...
            p.update(1, loss=0.12)

``enabled`` None (the default) means: a bar on a terminal, log lines otherwise; False silences it
(``--no-progress``); True forces the bar.
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
        extra = "".join(f" {k}={_fmt(v)}" for k, v in self.fields.items())
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}{extra}", file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
