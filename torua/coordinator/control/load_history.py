"""Request rates from the nodes' counters, and the last 15 minutes of them.

Nodes report ever-growing counters per shard (:mod:`torua.node.load`); a rate
is the growth between two readings divided by the time between them. Rates
are taken over the readings of the last :data:`RATE_WINDOW` seconds, so one
slow poll or one burst does not swing a placement decision. A counter that
went down means the node restarted: its readings start again.

Everything kept is bounded twice: by age (:data:`WINDOW`) and by count (a
``deque`` with ``maxlen``), so a coordinator that polls fast or runs for
months holds the same small amount.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["MAX_POINTS", "RATE_WINDOW", "WINDOW", "CopyRate", "Series"]

WINDOW = 900.0
"""Seconds of history kept for the dashboard's plots."""

MAX_POINTS = 900
"""Points per series at most: one a second over the window (polls are at least 1 s apart)."""

RATE_WINDOW = 30.0
"""Seconds of counter readings a rate is taken over."""


@dataclass(slots=True)
class CopyRate:
    """One copy's counter readings: ``(monotonic time, requests so far)``."""

    readings: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))

    def add(self, now: float, requests: int) -> None:
        readings = self.readings
        if readings and requests < readings[-1][1]:
            readings.clear()  # the node restarted: its counters began again at zero
        readings.append((now, requests))
        while len(readings) > 2 and now - readings[1][0] >= RATE_WINDOW:
            readings.popleft()

    def rate(self) -> float | None:
        """Requests per second over the readings kept; None until there are two."""
        if len(self.readings) < 2:
            return None
        (t0, c0), (t1, c1) = self.readings[0], self.readings[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None


class Series:
    """Points ``(wall-clock seconds, value, value...)`` over the last :data:`WINDOW`."""

    __slots__ = ("_points",)

    def __init__(self) -> None:
        self._points: deque[tuple[float | None, ...]] = deque(maxlen=MAX_POINTS)

    def add(self, at: float, *values: float | None) -> None:
        points = self._points
        points.append((round(at, 3), *(None if v is None else round(v, 3) for v in values)))
        while at - (points[0][0] or 0.0) > WINDOW:
            points.popleft()

    def points(self) -> list[tuple[float | None, ...]]:
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
