"""Where a population's fitness evaluations run (SPEC R-EVO: local processes by default, Ray
when the user has a cluster).

:func:`make_executor` returns an object with ``map(fn, items) -> list`` (order preserved),
``workers`` (how many evaluations run at once; callers split their work into that many items)
and ``close()`` (also a context manager); for work that becomes ready while other work runs (a
study's cells), ``submit(fn, item) -> handle``, ``wait_any(handles) -> handle`` (one that has
finished) and ``result(handle)``. ``fn`` must be picklable (a module-level function, or
a ``functools.partial`` of one) when ``workers > 1`` or with Ray.

- ``local``: ``workers == 1`` runs in this process; otherwise a ``ProcessPoolExecutor`` with the
  ``spawn`` start method (safe with torch and threads), created on the first ``map`` and kept
  for the next ones, each worker limited to one torch thread.
- ``ray``: remote tasks of one CPU each on the cluster at ``RAY_ADDRESS`` or, when it is unset,
  on a local Ray started with ``workers`` CPUs (and shut down by ``close``).

Determinism is the caller's contract: an evaluation's randomness comes from its keys, e.g.
:func:`derive_seed` (seed, generation, individual index), never from the worker it runs in, so
the results are the same for any executor and number of workers.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable

from spikeverse.errors import SpikeverseError

EXECUTORS = ("local", "ray")
RAY_MISSING = "--executor ray needs the ray extra: pip install 'spikeverse[ray]'"


def _one_thread() -> None:
    """Worker initializer: one torch thread per process (the evaluations are the parallelism)."""
    import torch

    torch.set_num_threads(1)


class LocalExecutor:
    """In-process (``workers == 1``) or a pool of ``workers`` spawned processes."""

    def __init__(self, workers: int = 1):
        self.workers = int(workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        return list(self._processes().map(fn, items))

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future:
        """Start ``fn(item)`` (``workers == 1``: run it now, in this process)."""
        if self.workers > 1:
            return self._processes().submit(fn, item)
        done: Future = Future()
        done.set_result(fn(item))
        return done

    def wait_any(self, handles: Iterable[Future]) -> Future:
        """One of ``handles`` that has finished (waiting for the first if none has)."""
        return next(iter(wait(list(handles), return_when=FIRST_COMPLETED).done))

    def result(self, handle: Future) -> Any:
        return handle.result()

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_one_thread)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ray_call(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of a Ray task: one torch thread, then ``fn(item)``."""
    _one_thread()
    return fn(item)


class RayExecutor:
    """Remote tasks of one CPU each; connects to ``RAY_ADDRESS`` or starts a local Ray."""

    def __init__(self, workers: int = 1):
        try:
            import ray
        except ImportError:
            raise SpikeverseError(RAY_MISSING) from None
        self.ray = ray
        address = os.environ.get("RAY_ADDRESS") or None
        self._owned = not ray.is_initialized() and address is None
        ray.init(address=address, num_cpus=None if address else int(workers), include_dashboard=False,
                 ignore_reinit_error=True, log_to_driver=False)
        self.workers = int(workers)
        self._task = ray.remote(num_cpus=1)(_ray_call)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        fn_ref = self.ray.put(fn)
        return self.ray.get([self._task.remote(fn_ref, x) for x in items])

    def submit(self, fn: Callable[[Any], Any], item: Any):
        """Start ``fn(item)`` as a Ray task (an ObjectRef)."""
        return self._task.remote(fn, item)

    def wait_any(self, handles: Iterable[Any]):
        return self.ray.wait(list(handles), num_returns=1)[0][0]

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self) -> None:
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_executor(kind: str = "local", workers: int = 1) -> None:
    """Refuse an unknown executor, fewer than one worker, or Ray when it is not installed (one
    line), without starting anything."""
    if kind not in EXECUTORS:
        raise SpikeverseError(f"unknown executor '{kind}' (choose local or ray)")
    if int(workers) != workers or int(workers) < 1:
        raise SpikeverseError(f"--workers must be an integer >= 1, got {workers}")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise SpikeverseError(RAY_MISSING)


def make_executor(kind: str = "local", workers: int = 1) -> LocalExecutor | RayExecutor:
    """An executor of ``kind`` (local or ray) running ``workers`` evaluations at once."""
    check_executor(kind, workers)
    return LocalExecutor(workers) if kind == "local" else RayExecutor(workers)
