"""The node's storage interface and the in-memory implementation.

Every value carries a version and a delete leaves a tombstone, so two copies of
a shard can be compared and merged (highest version wins) when a shard moves or
a node returns. The interface is async because the durable store waits for
its group commit and reads whole-shard listings on worker threads.

Listings of a shard (``keys``, ``export``, ``export_page``) go page by page
in key order, each page bounded in rows, bytes and rows examined, so moving
or listing a large shard never holds the event loop for the whole shard.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import trio

from torua.sim import seam

__all__ = [
    "KEY_PAGE",
    "MemoryStore",
    "Page",
    "Record",
    "ShardStats",
    "Store",
    "apply_write",
    "export_all",
    "next_version",
]

KEY_PAGE = 10_000  # keys per page when listing a shard's keys
SCAN_FACTOR = 16  # a page examines at most this many rows per row it may return


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes | None  # None is a tombstone
    version: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a shard's records and where the next page starts.

    ``next`` is the key to pass as ``after`` for the following page, ``None``
    once the shard has no rows left. A page filtered by ``since`` may be empty
    and still have a ``next``: it examined rows without finding newer ones.
    """

    rows: list[tuple[str, Record]]
    next: str | None


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

    async def keys(self, shard: int) -> list[str]:
        """Live keys (no tombstones) in key order, read in pages of :data:`KEY_PAGE`."""
        ...

    def stats(self, shard: int) -> ShardStats: ...

    async def export(self, shard: int, *, since: int = 0) -> list[tuple[str, Record]]:
        """Every record newer than ``since`` (tombstones included), page by page."""
        ...

    async def export_page(
        self,
        shard: int,
        *,
        after: str | None = None,
        since: int = 0,
        max_rows: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> Page:
        """Records after key ``after`` whose version is above ``since``, in key order.

        Tombstones are included: a copy catching up must learn of deletes too.
        A page stops at ``max_rows`` rows, once ``max_bytes`` of values are in
        it (always at least one row), or after examining ``SCAN_FACTOR *
        max_rows`` rows, so a large shard moves in bounded steps even when
        few of its records are newer than ``since``.
        """
        ...

    async def drop_shard(self, shard: int) -> None: ...

    async def purge_tombstones(self, shard: int, older_than: float) -> int:
        """Delete tombstones written more than ``older_than`` seconds ago (by this
        store's clock); returns how many. Only safe once no copy of the shard can
        come back without them (docs/replication.md, "Tombstone GC")."""
        ...

    def max_version(self) -> int: ...

    async def close(self) -> None: ...


async def export_all(store: Store, shard: int, *, since: int = 0) -> list[tuple[str, Record]]:
    """Every page of a shard's export joined: for tools and tests, not for moves."""
    rows: list[tuple[str, Record]] = []
    page = await store.export_page(shard, since=since)
    rows += page.rows
    while page.next is not None:
        page = await store.export_page(shard, after=page.next, since=since)
        rows += page.rows
    return rows


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

    def __init__(self, *, clock: Callable[[], float] = seam.wall_time) -> None:
        self._shards: dict[int, dict[str, Record]] = {}
        # Each shard's keys, sorted: a page starts with a bisection, not a sort of the shard.
        self._order: dict[int, list[str]] = {}
        self._deleted_at: dict[int, dict[str, float]] = {}  # when each tombstone was written
        self._clock = clock
        self._max_version = 0

    async def get(self, shard: int, key: str) -> Record | None:
        return self._shards.get(shard, {}).get(key)

    def _apply(self, shard: int, key: str, record: Record) -> bool:
        table = self._shards.setdefault(shard, {})
        current = table.get(key)
        if current is not None and current.version >= record.version:
            return False
        if current is None:
            bisect.insort(self._order.setdefault(shard, []), key)
        table[key] = record
        self._max_version = max(self._max_version, record.version)
        deleted = self._deleted_at.setdefault(shard, {})
        if record.value is None:
            deleted[key] = self._clock()
        else:
            deleted.pop(key, None)
        return True

    async def put(self, shard: int, key: str, value: bytes | None, version: int) -> bool:
        return self._apply(shard, key, Record(value, version))

    async def put_many(self, shard: int, records: Iterable[tuple[str, Record]]) -> int:
        return sum(self._apply(shard, key, record) for key, record in records)

    async def keys(self, shard: int) -> list[str]:
        found: list[str] = []
        order = self._order.get(shard, [])
        start = 0
        while start < len(order):
            # Writes between pages may insert keys: each page restarts from the last key.
            table = self._shards.get(shard, {})
            chunk = order[start : start + KEY_PAGE]
            found += [k for k in chunk if table[k].value is not None]
            await trio.lowlevel.checkpoint()
            order = self._order.get(shard, [])
            start = bisect.bisect_right(order, chunk[-1])
        return found

    def stats(self, shard: int) -> ShardStats:
        live = [r.value for r in self._shards.get(shard, {}).values() if r.value is not None]
        return ShardStats(keys=len(live), bytes=sum(len(v) for v in live))

    async def export(self, shard: int, *, since: int = 0) -> list[tuple[str, Record]]:
        return await export_all(self, shard, since=since)

    async def export_page(
        self,
        shard: int,
        *,
        after: str | None = None,
        since: int = 0,
        max_rows: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> Page:
        await trio.lowlevel.checkpoint()
        table = self._shards.get(shard, {})
        order = self._order.get(shard, [])
        start = 0 if after is None else bisect.bisect_right(order, after)
        stop = min(len(order), start + SCAN_FACTOR * max_rows)
        rows: list[tuple[str, Record]] = []
        size = 0
        for i in range(start, stop):
            record = table[order[i]]
            if record.version > since:
                rows.append((order[i], record))
                size += len(record.value or b"")
                if len(rows) >= max_rows or size >= max_bytes:
                    stop = i + 1
                    break
        return Page(rows, order[stop - 1] if stop < len(order) else None)

    async def drop_shard(self, shard: int) -> None:
        self._shards.pop(shard, None)
        self._order.pop(shard, None)
        self._deleted_at.pop(shard, None)

    async def purge_tombstones(self, shard: int, older_than: float) -> int:
        cutoff = self._clock() - older_than
        deleted = self._deleted_at.get(shard, {})
        old = [key for key, at in deleted.items() if at < cutoff]
        for key in old:
            del deleted[key]
            del self._shards[shard][key]
            order = self._order.get(shard, [])
            at = bisect.bisect_left(order, key)
            if at < len(order) and order[at] == key:
                del order[at]
        return len(old)

    def max_version(self) -> int:
        return self._max_version

    async def close(self) -> None:
        self._shards.clear()
        self._order.clear()
        self._deleted_at.clear()
