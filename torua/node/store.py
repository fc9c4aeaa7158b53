"""The node's storage interface and the in-memory implementation.

Every value carries a version and a delete leaves a tombstone, so two copies of
a shard can be compared and merged (highest version wins) when a shard moves or
a node returns. The interface is async because the durable store commits
through a writer thread; the memory store simply never blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from torua.sim import seam

__all__ = ["MemoryStore", "Record", "ShardStats", "Store", "apply_write", "next_version"]


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes | None  # None is a tombstone
    version: int


@dataclass(frozen=True, slots=True)
class ShardStats:
    keys: int
    bytes: int


def next_version(current: int = 0) -> int:
    """A version later than ``current`` and roughly wall-clock ordered (ns)."""
    return max(current + 1, seam.current().time_ns())


class Store(Protocol):
    async def get(self, shard: int, key: str) -> Record | None: ...

    async def put(self, shard: int, key: str, value: bytes | None, version: int) -> bool:
        """Apply unless a newer version is already there; True when applied."""
        ...

    async def put_many(self, shard: int, records: Iterable[tuple[str, Record]]) -> int: ...

    def keys(self, shard: int) -> list[str]: ...

    def stats(self, shard: int) -> ShardStats: ...

    def export(self, shard: int) -> list[tuple[str, Record]]: ...

    def export_page(
        self,
        shard: int,
        *,
        after: str | None = None,
        max_rows: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> list[tuple[str, Record]]:
        """Rows after key ``after`` in key order, tombstones included; ``[]`` at the end.

        Stops at ``max_rows`` rows or once ``max_bytes`` of values are in the
        page (always at least one row), so a large shard moves in bounded steps.
        """
        ...

    async def drop_shard(self, shard: int) -> None: ...

    def max_version(self) -> int: ...

    async def close(self) -> None: ...


async def apply_write(
    store: Store, shard: int, key: str, value: bytes | None, version: int
) -> tuple[bool, int]:
    """Apply a versioned write; (applied, the version the key holds afterwards).

    The coordinator needs the stored version when a write is not applied: equal
    means this very write was already there (a resent request), larger means
    the copy holds a newer version than the coordinator issued, and the write
    must be retried with a larger one rather than acknowledged.
    """
    if await store.put(shard, key, value, version):
        return True, version
    current = await store.get(shard, key)
    return False, current.version if current is not None else version


class MemoryStore:
    """Dicts per shard; for ``--memory`` clusters, tests and demos."""

    def __init__(self) -> None:
        self._shards: dict[int, dict[str, Record]] = {}
        self._max_version = 0

    async def get(self, shard: int, key: str) -> Record | None:
        return self._shards.get(shard, {}).get(key)

    def _apply(self, shard: int, key: str, record: Record) -> bool:
        table = self._shards.setdefault(shard, {})
        current = table.get(key)
        if current is not None and current.version >= record.version:
            return False
        table[key] = record
        self._max_version = max(self._max_version, record.version)
        return True

    async def put(self, shard: int, key: str, value: bytes | None, version: int) -> bool:
        return self._apply(shard, key, Record(value, version))

    async def put_many(self, shard: int, records: Iterable[tuple[str, Record]]) -> int:
        return sum(self._apply(shard, key, record) for key, record in records)

    def keys(self, shard: int) -> list[str]:
        return sorted(k for k, r in self._shards.get(shard, {}).items() if r.value is not None)

    def stats(self, shard: int) -> ShardStats:
        live = [r.value for r in self._shards.get(shard, {}).values() if r.value is not None]
        return ShardStats(keys=len(live), bytes=sum(len(v) for v in live))

    def export(self, shard: int) -> list[tuple[str, Record]]:
        return list(self._shards.get(shard, {}).items())

    def export_page(
        self,
        shard: int,
        *,
        after: str | None = None,
        max_rows: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> list[tuple[str, Record]]:
        table = self._shards.get(shard, {})
        page: list[tuple[str, Record]] = []
        size = 0
        for key in sorted(k for k in table if after is None or k > after):
            page.append((key, table[key]))
            size += len(table[key].value or b"")
            if len(page) >= max_rows or size >= max_bytes:
                break
        return page

    async def drop_shard(self, shard: int) -> None:
        self._shards.pop(shard, None)

    def max_version(self) -> int:
        return self._max_version

    async def close(self) -> None:
        self._shards.clear()
