"""The durable store's file: its tables, its statements, and how it is opened.

Every connection uses SQLite's ``unix-excl`` VFS where the platform has it:
the first access takes a process-wide exclusive lock on the file and the WAL
index lives in this process's heap instead of a shared-memory file. A node is
the only process that may use its directory anyway (``LOCK``, below), and
the default VFS pays for sharing with other processes on every transaction:
four ``fcntl`` calls per read, more than half the cost of a point read. A
process killed while holding the lock loses it with its file descriptors, and
the next open rebuilds the WAL index from the WAL file, as after any crash.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from urllib.parse import quote

from torua.errors import ConfigError

__all__ = [
    "BUMP_MAX",
    "DB_FILE",
    "LIVE_KEYS",
    "MAX_VERSION",
    "PURGE",
    "SCAN",
    "SCHEMA_VERSION",
    "UPSERT",
    "connect",
    "lock_directory",
    "open_writer",
]

DB_FILE = "store.sqlite3"
MAX_VERSION = 2**63 - 1  # SQLite INTEGER is a signed 64-bit number
SCHEMA_VERSION = 2  # 2: tombstones carry the time they were written (deleted_at)
_VFS = "unix-excl"

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

UPSERT = """
INSERT INTO kv (shard, key, value, version, deleted_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shard, key) DO UPDATE
SET value = excluded.value, version = excluded.version, deleted_at = excluded.deleted_at
WHERE excluded.version > kv.version
"""

# Only tombstones are indexed, so a purge reads just them, never a shard's live rows.
_TOMBSTONE_INDEX = """
CREATE INDEX IF NOT EXISTS kv_tombstones ON kv (shard, deleted_at) WHERE value IS NULL
"""
PURGE = "DELETE FROM kv WHERE shard = ? AND value IS NULL AND deleted_at < ?"

BUMP_MAX = "UPDATE meta SET value = max(value, ?) WHERE name = 'max_version'"

# The value is read only for rows newer than ``since``: older ones cost no value I/O.
SCAN = """
SELECT key, version, CASE WHEN version > ? THEN value END FROM kv
WHERE shard = ? AND key > ? ORDER BY key LIMIT ?
"""
LIVE_KEYS = (
    "SELECT key FROM kv WHERE shard = ? AND key > ? AND value IS NOT NULL ORDER BY key LIMIT ?"
)


def connect(path: str) -> sqlite3.Connection:
    """A connection to the store file, on ``unix-excl`` when SQLite has it.

    Autocommit (isolation_level=None): transactions are only the ones we BEGIN,
    so a reader's SELECT never holds a snapshot open between calls.
    check_same_thread=False: a connection may be made on one thread and used
    by another (never by two at once: the store serialises each one's use).
    """
    uri = f"file:{quote(os.path.abspath(path))}?vfs={_VFS}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError as exc:
        if "no such vfs" not in str(exc):
            raise
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def open_writer(path: str, synchronous: str) -> sqlite3.Connection:
    """The one connection that writes: WAL mode, the schema, upgrades.

    Automatic checkpoints are off on it: a checkpoint copies the WAL into the
    database file and syncs it, which would stall whoever commits; the store
    runs them on a worker thread instead (:mod:`torua.node.sqlite_commit`).
    """
    conn = connect(path)
    try:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise ConfigError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
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


def lock_directory(directory: str) -> int:
    """flock ``<directory>/LOCK``: one store per directory, released when we die."""
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
