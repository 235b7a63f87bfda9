"""Schedules for exploration and importance-sampling exponents."""

from __future__ import annotations


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """start + (end - start) * min(1, t / duration): linear from start to end, then flat."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)
