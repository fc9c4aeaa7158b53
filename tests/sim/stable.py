"""Hashes by creation order instead of by address, for the objects Trio and
Torua keep in sets.

An object's default hash is derived from its address, and a set iterates in
hash order: when Trio sets an Event or cancels a scope, it wakes the waiting
tasks in the order of a set of tasks; the native server shuts down its
connections in set order; a term cancels its scopes in set order; and
Trio's heap of deadlines breaks ties between equal deadlines by ``id()`` of
the cancel scope, so which of several tasks sleeping until the same instant
wakes first depends on addresses too. Addresses
depend on everything the process allocated before, so the same seed would
schedule differently after an unrelated change (another import, a log line).
While a seed runs, these classes hash by a serial number handed out the first
time each object is hashed, which happens in the (deterministic) order the
simulation runs in, and the deadline heap breaks ties by that hash.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from heapq import heappush
from typing import Any

import trio
import trio._core._run as trio_run

from torua.http.native.connection import Connection

from .network import SimStream

__all__ = ["stable_hashes"]

CLASSES: tuple[type, ...] = (
    trio_run.Task,
    trio_run.CancelStatus,
    trio_run.CancelScope,
    Connection,
    SimStream,
)


class _Serials:
    def __init__(self) -> None:
        self._by_id: dict[int, int] = {}
        self._next = 0

    def hash(self, obj: object) -> int:
        key = id(obj)
        serial = self._by_id.get(key)
        if serial is None:
            serial = self._next
            self._next += 1
            self._by_id[key] = serial
            # The address may be reused once the object is gone: forget it then.
            weakref.finalize(obj, self._by_id.pop, key, None)
        return serial


@contextmanager
def stable_hashes() -> Iterator[None]:
    serials = _Serials()
    saved: list[tuple[type, Any]] = [(cls, cls.__dict__.get("__hash__")) for cls in CLASSES]

    def stable(self: object) -> int:
        return serials.hash(self)

    def add(self: trio_run.Deadlines, deadline: float, cancel_scope: trio.CancelScope) -> None:
        heappush(self._heap, (deadline, serials.hash(cancel_scope), cancel_scope))
        self._active += 1

    original_add = trio_run.Deadlines.add
    for cls in CLASSES:
        cls.__hash__ = stable  # type: ignore[method-assign,assignment]
    trio_run.Deadlines.add = add  # type: ignore[method-assign]
    try:
        yield
    finally:
        trio_run.Deadlines.add = original_add  # type: ignore[method-assign]
        for cls, original in saved:
            if original is None:
                del cls.__hash__  # type: ignore[misc]
            else:
                cls.__hash__ = original  # type: ignore[method-assign]
