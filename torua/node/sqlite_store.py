"""The durable node store: SQLite in WAL mode, group commit, reads on the loop.

A read on the Trio thread costs far less than a hop to a worker thread (the
README's bench section has the figures). So single-key reads run on the Trio
thread through their own read-only connection (WAL: readers run beside the
writer and see only committed rows). Listings of a shard (keys, export pages)
examine thousands of rows, so they run on a worker thread through a third,
read-only connection, one page at a time: a shard move never stalls the node's
loop. Writes are group-committed by one writer task
(:mod:`torua.node.sqlite_commit`); ``put()`` returns after its commit. The
file, its schema and its statements are in :mod:`torua.node.sqlite_schema`.

A row is replaced only by a strictly greater version (one SQL upsert), so
copies merged in any order converge; a delete leaves a NULL value (tombstone).

Recently read records are kept in memory (:mod:`torua.node.record_cache`);
every commit forgets the keys it touched before its writers are woken.

Durability: WAL with ``synchronous=NORMAL`` (default) keeps every committed
transaction through SIGKILL or any crash of the process (the commit is in the
WAL file, in the OS page cache; the WAL is synced at checkpoints). Power loss
or a kernel crash may lose the last commits, never corrupt the file.
``fsync=True`` (``synchronous=FULL``) adds one fsync per group commit.

``<dir>/LOCK`` (flock) keeps a second store off the directory; the kernel drops
it when the holder dies, so a SIGKILLed node restarts without cleanup. While
a node runs, no other process can open its database (not even the ``sqlite3``
shell): the connections hold SQLite's process-wide lock.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from torua.node.record_cache import DEFAULT_CACHE_BYTES, RecordCache
from torua.node.sqlite_commit import GroupCommit, WriteOp
from torua.node.sqlite_schema import (
    DB_FILE,
    LIVE_KEYS,
    MAX_VERSION,
    SCAN,
    connect,
    lock_directory,
    open_writer,
)
from torua.node.store import KEY_PAGE, SCAN_FACTOR, Page, Record, ShardStats, export_all

__all__ = ["DB_FILE", "SqliteStore", "open_sqlite_store"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _check(value: bytes | None, version: int) -> None:
    if value is not None and not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"a value is bytes or None (a tombstone), not {type(value).__name__}")
    if not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise ValueError(f"a version is an integer from 0 to {MAX_VERSION}, not {version!r}")


class SqliteStore:
    """The durable :class:`~torua.node.store.Store`; see the module docstring.

    The constructor opens (or creates) ``<directory>/store.sqlite3`` and loads
    ``max_version``; the writer task starts with the first write, so it
    belongs to the Trio run that writes. ``close()`` (or leaving
    :func:`open_sqlite_store`) commits what is queued and ends that task.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.directory = os.fspath(directory)
        self.cache = RecordCache(cache_bytes)
        self.path = os.path.join(self.directory, DB_FILE)
        self._scan_lock = trio.Lock()
        self._closed = False
        self._lock_fd = lock_directory(self.directory)
        try:
            self._writer = open_writer(self.path, "FULL" if fsync else "NORMAL")
            self._reader = connect(self.path)
            self._reader.execute("PRAGMA query_only = ON")
            self._scanner = connect(self.path)  # used by one worker thread at a time
            self._scanner.execute("PRAGMA query_only = ON")
            self._checkpointer = connect(self.path)  # used by one worker thread at a time
            sql = "SELECT value FROM meta WHERE name = 'max_version'"
            (self._max_version,) = self._reader.execute(sql).fetchall()[0]
        except BaseException:
            self._release_files()
            raise
        self._commits = GroupCommit(
            self._writer,
            self._checkpoint,
            fsync=fsync,
            name=f"store {self.path}",
            committed=self._forget,
        )
        log.debug("opened %s (fsync=%s, max_version=%d)", self.path, fsync, self._max_version)

    @property
    def commits(self) -> int:
        """Transactions committed: shows group commit working."""
        return self._commits.commits

    # -- reads: on the Trio thread, no hop ------------------------------------

    def _read_one(self, sql: str, params: tuple[object, ...]) -> tuple | None:
        # fetchall, not fetchone: the statement runs to completion and resets,
        # so no read transaction stays open to pin the WAL.
        rows = self._reader.execute(sql, params).fetchall()
        return rows[0] if rows else None

    async def get(self, shard: int, key: str) -> Record | None:
        cached = self.cache.get(shard, key)
        if cached is not None:
            return cached
        row = self._read_one(
            "SELECT value, version FROM kv WHERE shard = ? AND key = ?", (shard, key)
        )
        if row is None:
            return None
        record = Record(row[0], row[1])
        self.cache.put(shard, key, record)  # no await since the read: still current
        return record

    async def keys(self, shard: int) -> list[str]:
        found: list[str] = []
        while True:
            after = found[-1] if found else ""
            page = await self._scan(self._live_keys, shard, after)
            found += page
            if len(page) < KEY_PAGE:
                return found

    def _live_keys(self, shard: int, after: str) -> list[str]:
        rows = self._scanner.execute(LIVE_KEYS, (shard, after, KEY_PAGE)).fetchall()
        return [key for (key,) in rows]

    def stats(self, shard: int) -> ShardStats:
        row = self._read_one("SELECT keys, bytes FROM shard_stats WHERE shard = ?", (shard,))
        return ShardStats(keys=0, bytes=0) if row is None else ShardStats(keys=row[0], bytes=row[1])

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
        """See :meth:`torua.node.store.Store.export_page`; read on a worker thread."""
        return await self._scan(self._page, shard, after or "", since, max_rows, max_bytes)

    def _page(self, shard: int, after: str, since: int, max_rows: int, max_bytes: int) -> Page:
        limit = SCAN_FACTOR * max_rows
        cursor = self._scanner.execute(SCAN, (since, shard, after, limit))
        rows: list[tuple[str, Record]] = []
        size = examined = 0
        key = after
        try:
            for key, version, value in cursor:
                examined += 1
                if version > since:
                    rows.append((key, Record(value, version)))
                    size += len(value or b"")
                    if len(rows) >= max_rows or size >= max_bytes:
                        return Page(rows, key)
        finally:
            cursor.close()  # resets the statement: ends the read transaction
        return Page(rows, key if examined == limit else None)

    async def _scan(self, read: Callable[..., _T], *args: object) -> _T:
        """Run ``read`` on a worker thread; one at a time, as they share a connection."""
        async with self._scan_lock:
            if self._closed:
                raise RuntimeError(f"store {self.path} is closed")
            return await trio.to_thread.run_sync(read, *args)

    def max_version(self) -> int:
        return self._max_version

    # -- writes: queued to the writer thread ----------------------------------

    async def put(self, shard: int, key: str, value: bytes | None, version: int) -> bool:
        """Apply unless an equal or newer version is stored; True when applied.

        Returns once the transaction holding this write has committed. If the
        caller is cancelled while waiting, the write may still be applied.
        """
        _check(value, version)
        return await self._submit(WriteOp(shard, [(key, value, version)])) == 1

    async def put_many(self, shard: int, records: Iterable[tuple[str, Record]]) -> int:
        """Merge records into a shard in one transaction; returns how many applied."""
        rows = []
        for key, record in records:
            _check(record.value, record.version)
            rows.append((key, record.value, record.version))
        if not rows:
            return 0
        return await self._submit(WriteOp(shard, rows))

    async def drop_shard(self, shard: int) -> None:
        await self._submit(WriteOp(shard, None))

    async def purge_tombstones(self, shard: int, older_than: float) -> int:
        return await self._submit(WriteOp(shard, [], purge_before=time.time() - older_than))

    async def _submit(self, op: WriteOp) -> int:
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        self._max_version = max(self._max_version, op.top_version())
        return await self._commits.submit(op)

    async def close(self) -> None:
        """Commit every queued write, end the writer task, close the files.

        Shielded: a cancelled shutdown must still wait for the writer and any
        listing on its thread, or they would use the files after we return.
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await self._scan_lock.acquire()  # a listing still on its thread ends first
            await self._commits.stop()
        self._release_files()

    def _forget(self, batch: list[WriteOp]) -> None:
        for op in batch:
            if op.heavy:
                self.cache.clear()
            else:
                self.cache.forget(op.shard, (key for key, _, _ in op.rows or ()))

    def _checkpoint(self) -> None:
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _release_files(self) -> None:
        connections = ("_reader", "_scanner", "_checkpointer", "_writer")
        for conn in (getattr(self, name, None) for name in connections):
            if conn is not None:
                conn.close()
        os.close(self._lock_fd)  # releases the flock


@asynccontextmanager
async def open_sqlite_store(
    directory: str | os.PathLike[str],
    *,
    fsync: bool = False,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> AsyncIterator[SqliteStore]:
    """A :class:`SqliteStore` whose writer task has ended when the block exits."""
    store = SqliteStore(directory, fsync=fsync, cache_bytes=cache_bytes)
    try:
        yield store
    finally:
        await store.close()
