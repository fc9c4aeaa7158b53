"""Per-shard request counters on a node: what load-aware placement measures.

The store route counts every read and write that reached the store, with the
value bytes it carried, in one method call on the request path: a dict lookup
and integer additions, no lock (one Trio thread) and no new container once
the shard has been seen. Counters only grow while the process lives, so a reader
turns two readings into a rate, and a shard that leaves this node needs no
reset. A restart starts them at zero again; a reader sees a counter go down
and starts its rate afresh (as Prometheus does with ``rate()``).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["LoadCounts", "ShardLoad"]


class LoadCounts(NamedTuple):
    reads: int
    writes: int
    bytes_read: int
    bytes_written: int

    @property
    def requests(self) -> int:
        return self.reads + self.writes

    def to_json(self) -> dict[str, int]:
        return self._asdict()


_ZERO = LoadCounts(0, 0, 0, 0)


class ShardLoad:
    """Reads, writes and value bytes per shard since this process started."""

    __slots__ = ("_shards",)

    def __init__(self) -> None:
        # shard -> [reads, writes, bytes read, bytes written]
        self._shards: dict[int, list[int]] = {}

    def read(self, shard_id: int, size: int) -> None:
        counts = self._shards.get(shard_id) or self._start(shard_id)
        counts[0] += 1
        counts[2] += size

    def write(self, shard_id: int, size: int) -> None:
        counts = self._shards.get(shard_id) or self._start(shard_id)
        counts[1] += 1
        counts[3] += size

    def _start(self, shard_id: int) -> list[int]:
        counts = self._shards[shard_id] = [0, 0, 0, 0]
        return counts

    def counts(self, shard_id: int) -> LoadCounts:
        counts = self._shards.get(shard_id)
        return _ZERO if counts is None else LoadCounts(*counts)

    def shards(self) -> list[int]:
        """Every shard counted so far, held now or not."""
        return sorted(self._shards)
