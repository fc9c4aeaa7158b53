"""Which writes are in flight per shard, so a new copy never misses one.

A copy being filled receives every write that starts after it joined the
shard's copies. A write that started *before* may reach only the old copies,
after the fill already exported that key. So a fill first bumps the shard's
epoch and waits until every write of an older epoch has finished; only then
does it export. It also learns whether a write to the copy failed meanwhile
(the copy then missed it and the fill must not declare it in sync).

Also here: the per-key count of writes in flight that the router keeps
(:class:`KeysWriting`), so a read of a key being written compares its copies.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import trio

__all__ = ["KeysWriting", "WriteTracker", "unmark"]


class _Writing:
    """``with tracker.writing(shard):`` as a plain class: a generator-based context
    manager cost several microseconds of a routed write's CPU."""

    __slots__ = ("_epoch", "_shard_id", "_tracker")

    def __init__(self, tracker: WriteTracker, shard_id: int) -> None:
        self._tracker = tracker
        self._shard_id = shard_id
        self._epoch = 0

    def __enter__(self) -> None:
        self._epoch = self._tracker.begin(self._shard_id)

    def __exit__(self, *exc_info: object) -> None:
        self._tracker.end(self._shard_id, self._epoch)


class WriteTracker:
    def __init__(self) -> None:
        self._epoch: dict[int, int] = defaultdict(int)
        self._inflight: dict[int, Counter[int]] = defaultdict(Counter)
        self._finished: dict[int, trio.Event] = defaultdict(trio.Event)
        self._missed: set[tuple[int, str]] = set()

    def writing(self, shard_id: int) -> _Writing:
        """A write to the shard is in flight inside this ``with``."""
        return _Writing(self, shard_id)

    def begin(self, shard_id: int) -> int:
        """A write to the shard starts; returns its epoch, for :meth:`end`.

        (The router's per-key path calls this pair inside its own try/finally.)
        """
        epoch = self._epoch[shard_id]
        self._inflight[shard_id][epoch] += 1
        return epoch

    def end(self, shard_id: int, epoch: int) -> None:
        """The write :meth:`begin` returned ``epoch`` for has its outcome."""
        counts = self._inflight[shard_id]
        counts[epoch] -= 1
        if counts[epoch] <= 0:
            del counts[epoch]
        finished = self._finished.pop(shard_id, None)
        if finished is not None:  # a fill waits for older writes
            finished.set()

    def bump(self, shard_id: int) -> int:
        self._epoch[shard_id] += 1
        return self._epoch[shard_id]

    async def wait_older(self, shard_id: int, epoch: int) -> None:
        """Until no write that began before ``epoch`` is still in flight."""
        while any(e < epoch for e in self._inflight[shard_id]):
            await self._finished[shard_id].wait()

    def note_missed(self, shard_id: int, node_id: str) -> None:
        self._missed.add((shard_id, node_id))

    def take_missed(self, shard_id: int, node_id: str) -> bool:
        """Whether that copy missed a write since the last call (and forget it)."""
        try:
            self._missed.remove((shard_id, node_id))
        except KeyError:
            return False
        return True


def unmark(in_flight: dict[tuple[int, str], int], item: tuple[int, str]) -> None:
    """One write of ``item`` (shard, key) has its outcome."""
    count = in_flight[item]
    if count == 1:
        del in_flight[item]
    else:
        in_flight[item] = count - 1


class KeysWriting:
    """The context manager :meth:`Router.writing` returns: a plain class, since a
    generator-based one cost several microseconds of every write's CPU."""

    __slots__ = ("_in_flight", "_marked")

    def __init__(self, in_flight: dict[tuple[int, str], int], marked: list[tuple[int, str]]):
        self._in_flight = in_flight
        self._marked = marked

    def __enter__(self) -> None:
        in_flight = self._in_flight
        for item in self._marked:
            in_flight[item] = in_flight.get(item, 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        for item in self._marked:
            unmark(self._in_flight, item)
