"""The durable node store: SQLite in WAL mode, one writer thread, group commit.

A read on the Trio thread costs far less than a hop to a worker thread (the
README's bench section has the figures). So single-key reads run on the Trio
thread through their own read-only connection (WAL: readers run beside the
writer and see only committed rows). Listings of a shard (keys, export pages)
examine thousands of rows, so they run on a worker thread through a third,
read-only connection, one page at a time: a shard move never stalls the node's
loop. Writes cross to ONE writer thread owning the write connection. It takes
everything queued, applies it in one transaction, commits once and wakes all
the waiting tasks with one ``run_sync_soon``: under load a commit and a loop
wake-up serve many writes. ``put()`` returns after its commit.

A row is replaced only by a strictly greater version (one SQL upsert), so
copies merged in any order converge; a delete leaves a NULL value (tombstone).

Durability: WAL with ``synchronous=NORMAL`` (default) keeps every committed
transaction through SIGKILL or any crash of the process (the commit is in the
WAL file, in the OS page cache; the WAL is fsynced at checkpoints). Power loss
or a kernel crash may lose the last commits, never corrupt the file.
``fsync=True`` (``synchronous=FULL``) adds one fsync per group commit.

``<dir>/LOCK`` (flock) keeps a second store off the directory; the kernel drops
it when the holder dies, so a SIGKILLed node restarts without cleanup.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from torua.errors import ConfigError
from torua.node.store import KEY_PAGE, SCAN_FACTOR, Page, Record, ShardStats, export_all

__all__ = ["DB_FILE", "SqliteStore", "open_sqlite_store"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DB_FILE = "store.sqlite3"
MAX_VERSION = 2**63 - 1  # SQLite INTEGER is a signed 64-bit number
_MAX_BATCH = 1024  # operations per group commit: bounds one transaction's latency
SCHEMA_VERSION = 2  # 2: tombstones carry the time they were written (deleted_at)

# Triggers keep shard_stats in kv's transactions: stats() is one lookup, not a
# scan (counting a 100k-key shard blocked the loop for 39 ms).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    shard   INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    value   BLOB,               -- NULL is a tombstone
    version INTEGER NOT NULL,
    deleted_at REAL,            -- a tombstone's wall-clock time of writing, for its GC
    PRIMARY KEY (shard, key)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('max_version', 0);
CREATE TABLE IF NOT EXISTS shard_stats (shard INTEGER PRIMARY KEY, keys INTEGER, bytes INTEGER);
CREATE TRIGGER IF NOT EXISTS kv_insert AFTER INSERT ON kv BEGIN
    INSERT INTO shard_stats (shard, keys, bytes)
    VALUES (new.shard, new.value IS NOT NULL, coalesce(length(new.value), 0))
    ON CONFLICT (shard) DO UPDATE
    SET keys = keys + excluded.keys, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS kv_update AFTER UPDATE ON kv BEGIN
    UPDATE shard_stats
    SET keys = keys + (new.value IS NOT NULL) - (old.value IS NOT NULL),
        bytes = bytes + coalesce(length(new.value), 0) - coalesce(length(old.value), 0)
    WHERE shard = new.shard;
END;
CREATE TRIGGER IF NOT EXISTS kv_delete AFTER DELETE ON kv BEGIN
    UPDATE shard_stats
    SET keys = keys - (old.value IS NOT NULL), bytes = bytes - coalesce(length(old.value), 0)
    WHERE shard = old.shard;
END;
"""

_UPSERT = """
INSERT INTO kv (shard, key, value, version, deleted_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shard, key) DO UPDATE
SET value = excluded.value, version = excluded.version, deleted_at = excluded.deleted_at
WHERE excluded.version > kv.version
"""

# Only tombstones are indexed, so a purge reads just them, never a shard's live rows.
_TOMBSTONE_INDEX = """
CREATE INDEX IF NOT EXISTS kv_tombstones ON kv (shard, deleted_at) WHERE value IS NULL
"""
_PURGE = "DELETE FROM kv WHERE shard = ? AND value IS NULL AND deleted_at < ?"

_BUMP_MAX = "UPDATE meta SET value = max(value, ?) WHERE name = 'max_version'"

# The value is read only for rows newer than ``since``: older ones cost no value I/O.
_SCAN = """
SELECT key, version, CASE WHEN version > ? THEN value END FROM kv
WHERE shard = ? AND key > ? ORDER BY key LIMIT ?
"""
_LIVE_KEYS = (
    "SELECT key FROM kv WHERE shard = ? AND key > ? AND value IS NOT NULL ORDER BY key LIMIT ?"
)


@dataclass(slots=True, eq=False)
class _Op:
    """One queued write; the writer thread fills ``result`` or ``error``."""

    shard: int
    rows: list[tuple[str, bytes | None, int]] | None  # None means: drop the shard
    purge_before: float | None = None  # set: purge tombstones written before this time
    done: trio.Event = field(default_factory=trio.Event)
    result: int = 0
    error: BaseException | None = None

    def apply(self, conn: sqlite3.Connection) -> int:
        if self.purge_before is not None:
            return conn.execute(_PURGE, (self.shard, self.purge_before)).rowcount
        if self.rows is None:
            conn.execute("DELETE FROM kv WHERE shard = ?", (self.shard,))
            conn.execute("DELETE FROM shard_stats WHERE shard = ?", (self.shard,))
            return 0
        now = time.time()
        cursor = conn.executemany(
            _UPSERT,
            ((self.shard, k, v, ver, now if v is None else None) for k, v, ver in self.rows),
        )
        return cursor.rowcount  # an upsert whose WHERE refused it changes nothing

    def top_version(self) -> int:
        return max((row[2] for row in self.rows or ()), default=0)


_STOP = object()  # queued by close(): the writer finishes what precedes it, then exits


def _check(value: bytes | None, version: int) -> None:
    if value is not None and not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"a value is bytes or None (a tombstone), not {type(value).__name__}")
    if not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise ValueError(f"a version is an integer from 0 to {MAX_VERSION}, not {version!r}")


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): transactions are only the ones we BEGIN,
    # so a reader's SELECT never holds a snapshot open between calls.
    # check_same_thread=False: the writer connection is built here, then used
    # only by the writer thread; the reader only by the Trio thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class SqliteStore:
    """The durable :class:`~torua.node.store.Store`; see the module docstring.

    The constructor opens (or creates) ``<directory>/store.sqlite3`` and loads
    ``max_version``; the writer thread starts with the first write, so it
    belongs to the Trio run that writes. ``close()`` (or leaving
    :func:`open_sqlite_store`) commits what is queued and joins the thread.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, DB_FILE)
        self.commits = 0  # transactions committed by the writer: shows group commit working
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._writer_gone = trio.Event()
        self._scan_lock = trio.Lock()
        self._closed = False
        self._lock_fd = _lock_directory(self.directory)
        try:
            self._writer = _open_writer(self.path, "FULL" if fsync else "NORMAL")
            self._reader = _connect(self.path)
            self._reader.execute("PRAGMA query_only = ON")
            self._scanner = _connect(self.path)  # used by one worker thread at a time
            self._scanner.execute("PRAGMA query_only = ON")
            sql = "SELECT value FROM meta WHERE name = 'max_version'"
            (self._max_version,) = self._reader.execute(sql).fetchall()[0]
        except BaseException:
            self._release_files()
            raise
        log.debug("opened %s (fsync=%s, max_version=%d)", self.path, fsync, self._max_version)

    # -- reads: on the Trio thread, no hop ------------------------------------

    def _read_one(self, sql: str, params: tuple[object, ...]) -> tuple | None:
        # fetchall, not fetchone: the statement runs to completion and resets,
        # so no read transaction stays open to pin the WAL.
        rows = self._reader.execute(sql, params).fetchall()
        return rows[0] if rows else None

    async def get(self, shard: int, key: str) -> Record | None:
        row = self._read_one(
            "SELECT value, version FROM kv WHERE shard = ? AND key = ?", (shard, key)
        )
        return None if row is None else Record(row[0], row[1])

    async def keys(self, shard: int) -> list[str]:
        found: list[str] = []
        while True:
            after = found[-1] if found else ""
            page = await self._scan(self._live_keys, shard, after)
            found += page
            if len(page) < KEY_PAGE:
                return found

    def _live_keys(self, shard: int, after: str) -> list[str]:
        rows = self._scanner.execute(_LIVE_KEYS, (shard, after, KEY_PAGE)).fetchall()
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
        cursor = self._scanner.execute(_SCAN, (since, shard, after, limit))
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
        return await self._submit(_Op(shard, [(key, value, version)])) == 1

    async def put_many(self, shard: int, records: Iterable[tuple[str, Record]]) -> int:
        """Merge records into a shard in one transaction; returns how many applied."""
        rows = []
        for key, record in records:
            _check(record.value, record.version)
            rows.append((key, record.value, record.version))
        if not rows:
            return 0
        return await self._submit(_Op(shard, rows))

    async def drop_shard(self, shard: int) -> None:
        await self._submit(_Op(shard, None))

    async def purge_tombstones(self, shard: int, older_than: float) -> int:
        return await self._submit(_Op(shard, [], purge_before=time.time() - older_than))

    async def _submit(self, op: _Op) -> int:
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        if self._writer_gone.is_set():
            raise RuntimeError(f"store {self.path}: writer thread failed (see log)")
        if self._thread is None:  # started here so it belongs to the run that writes
            self._token = trio.lowlevel.current_trio_token()
            name = f"torua-sqlite-writer {self.directory}"
            self._thread = threading.Thread(target=self._writer_main, name=name, daemon=True)
            self._thread.start()
        self._max_version = max(self._max_version, op.top_version())
        self._queue.put(op)
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    async def close(self) -> None:
        """Commit every queued write, stop the writer thread, close the files.

        Shielded: a cancelled shutdown must still wait for the thread, or it
        would outlive the store (and hold the database) after we return.
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await self._scan_lock.acquire()  # a listing still on its thread ends first
        if self._thread is not None:
            self._queue.put(_STOP)
            with trio.CancelScope(shield=True):
                await self._writer_gone.wait()
            self._thread.join()  # it signalled on its way out: this is immediate
        self._release_files()

    def _release_files(self) -> None:
        connections = ("_reader", "_scanner", "_writer")
        for conn in (getattr(self, name, None) for name in connections):
            if conn is not None:
                conn.close()
        os.close(self._lock_fd)  # releases the flock

    # -- the writer thread ----------------------------------------------------

    def _writer_main(self) -> None:
        pending: list[_Op] = []
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                pending = [op for op in batch if isinstance(op, _Op)]
                stopping = len(pending) != len(batch)
                if pending:
                    self._commit_batch(pending)
                    self._wake(pending)
                    pending = []
        except BaseException as exc:  # a bug here must not leave writers waiting forever
            log.exception("sqlite writer thread failed")
            for op in pending:
                op.error = exc
        finally:
            self._wake(pending, gone=True)

    def _commit_batch(self, ops: list[_Op]) -> None:
        """One transaction for the batch; if it fails, each op alone, so one bad op
        (or a transient error) fails only its own caller."""
        try:
            self._transaction(ops)
        except Exception as exc:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            if len(ops) == 1:
                ops[0].error = exc
                return
            log.warning("group commit of %d writes failed (%s); retrying one by one", len(ops), exc)
            for op in ops:
                self._commit_batch([op])

    def _transaction(self, ops: list[_Op]) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        results = [op.apply(conn) for op in ops]
        conn.execute(_BUMP_MAX, (max(op.top_version() for op in ops),))
        conn.execute("COMMIT")
        self.commits += 1
        for op, result in zip(ops, results, strict=True):
            op.result = result

    def _wake(self, ops: list[_Op], *, gone: bool = False) -> None:
        """Hand results back to the Trio thread: one loop wake-up per batch."""

        def deliver() -> None:
            for op in ops:
                op.done.set()
            if gone:  # from now on _submit refuses; fail what was queued too late
                self._writer_gone.set()
                while not self._queue.empty():
                    if isinstance(late := self._queue.get_nowait(), _Op):
                        late.error = RuntimeError(f"store {self.path}: writer thread failed")
                        late.done.set()

        assert self._token is not None
        try:
            self._token.run_sync_soon(deliver)
        except trio.RunFinishedError:  # the run ended without close(): nobody waits
            pass


def _open_writer(path: str, synchronous: str) -> sqlite3.Connection:
    conn = _connect(path)
    try:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise ConfigError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found not in (0, 1, SCHEMA_VERSION):
            raise ConfigError(f"{path} has store schema {found}; this Torua reads {SCHEMA_VERSION}")
        # Schema 1 had no tombstone times: its tombstones count as written now (the
        # safe side: they are purged one grace period after the upgrade, not before).
        upgrade = (
            ""
            if found != 1
            else (
                "ALTER TABLE kv ADD COLUMN deleted_at REAL; "
                f"UPDATE kv SET deleted_at = {time.time()!r} WHERE value IS NULL;"
            )
        )
        conn.executescript(
            f"BEGIN; {_SCHEMA} {upgrade} {_TOMBSTONE_INDEX}; "
            f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )
    except BaseException:
        conn.close()
        raise
    return conn


def _lock_directory(directory: str) -> int:
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(os.path.join(directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {directory}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"data directory {directory} is in use by another store") from None
    return fd


@asynccontextmanager
async def open_sqlite_store(
    directory: str | os.PathLike[str], *, fsync: bool = False
) -> AsyncIterator[SqliteStore]:
    """A :class:`SqliteStore` whose writer thread is joined when the block exits."""
    store = SqliteStore(directory, fsync=fsync)
    try:
        yield store
    finally:
        await store.close()
