"""Where a process meets the world: streams, listeners, wall clock, randomness.

Production code asks ``current()`` instead of calling ``trio.open_tcp_stream``,
``time.time`` or ``uuid.uuid4`` directly. Outside a simulation that is the real
:class:`Host`, so nothing changes. The simulator runs a whole cluster in one
``trio.run`` and gives each simulated process its own :class:`Host` (its
address on a fake network, its own skewable clock, its own seeded random
source) through a context variable: Trio copies the spawning task's context
into every child task, so everything a process starts sees its host without
any argument being threaded through.
"""

from __future__ import annotations

import random
import time
import uuid
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx
import trio

__all__ = [
    "Host",
    "SimulatedListener",
    "SimulatedStream",
    "current",
    "installed",
    "monotonic",
    "wall_time",
]


class Host:
    """The real world: TCP, the system clock, the OS random source."""

    name = "local"

    async def open_tcp_stream(self, host: str, port: int) -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, port)

    async def open_tcp_listeners(self, port: int, host: str) -> list[trio.abc.Listener]:
        return list(await trio.open_tcp_listeners(port, host=host))

    def http_transport(self) -> httpx.AsyncBaseTransport | None:
        """For ``httpx.AsyncClient(transport=...)``: None keeps httpx's own."""
        return None

    def time(self) -> float:
        return time.time()

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()

    def unique_hex(self) -> str:
        """A fresh 128-bit identifier (incarnations, sessions, cluster ids)."""
        return uuid.uuid4().hex

    def uniform(self, low: float, high: float) -> float:
        """Jitter: a real process draws it from the shared generator."""
        return random.uniform(low, high)


_REAL = Host()
_current: ContextVar[Host] = ContextVar("torua_host", default=_REAL)


def current() -> Host:
    """The host the calling task runs on (the real one unless simulated)."""
    return _current.get()


def wall_time() -> float:
    """The calling task's host's wall clock: a default for injected clocks."""
    return _current.get().time()


def monotonic() -> float:
    """The calling task's host's monotonic clock: a default for injected clocks."""
    return _current.get().monotonic()


@contextmanager
def installed(host: Host) -> Iterator[Host]:
    """Run the calling task, and every task it starts from here on, on ``host``."""
    token = _current.set(host)
    try:
        yield host
    finally:
        _current.reset(token)


class SimulatedStream(trio.abc.Stream):
    """A stream with no socket under it: what a simulated network hands out.

    Code that reaches below the stream API to the socket (closing it without
    awaiting, polling an idle connection for EOF) asks these instead.
    """

    @abstractmethod
    def close_now(self) -> None:
        """Close at once, without awaiting (like closing the socket)."""

    @abstractmethod
    def has_input(self) -> bool:
        """Anything to read (data, EOF, a reset) right now."""


class SimulatedListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener with no socket under it; ``port`` is the port it took."""

    port: int
