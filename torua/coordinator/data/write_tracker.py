"""Which writes are in flight per shard, so a new copy never misses one.

A copy being filled receives every write that starts after it joined the
shard's copies. A write that started *before* may reach only the old copies,
after the fill already exported that key. So a fill first bumps the shard's
epoch and waits until every write of an older epoch has finished; only then
does it export. It also learns whether a write to the copy failed meanwhile
(the copy then missed it and the fill must not declare it in sync).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["WriteTracker"]


class WriteTracker:
    def __init__(self) -> None:
        self._epoch: dict[int, int] = defaultdict(int)
        self._inflight: dict[int, Counter[int]] = defaultdict(Counter)
        self._finished: dict[int, trio.Event] = defaultdict(trio.Event)
        self._missed: set[tuple[int, str]] = set()

    @contextmanager
    def writing(self, shard_id: int) -> Iterator[None]:
        epoch = self._epoch[shard_id]
        self._inflight[shard_id][epoch] += 1
        try:
            yield
        finally:
            counts = self._inflight[shard_id]
            counts[epoch] -= 1
            if counts[epoch] <= 0:
                del counts[epoch]
            self._finished.pop(shard_id, trio.Event()).set()

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
