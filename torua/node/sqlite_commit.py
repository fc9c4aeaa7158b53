"""Group commit for the durable store: one writer task, most commits on the loop.

Every write is queued; one task (a Trio system task, started by the first
write and joined by ``close()``) takes everything queued, applies it in one
transaction, commits once and wakes the waiting writers. Under load a commit
serves many writes.

Where a commit runs is chosen per batch. With ``synchronous=NORMAL`` and no
automatic checkpoints, a commit of a few rows only appends to the WAL file
(the OS page cache) and costs tens of microseconds, far less than handing it
to a thread and back (about 100 us of CPU per round trip on a loaded
machine, measured on the node's PUT path). So small batches commit on the
Trio thread. A batch that may take long goes to a worker thread, leaving the
loop free: when every commit fsyncs (``fsync=True``), when it carries more
than :data:`INLINE_ROWS` rows (a move's or a bulk request's page), and for
dropping a shard or purging tombstones (they touch a whole shard).

Checkpoints (copying the WAL back into the database file, with a sync) run on
a worker thread through their own connection every :data:`CHECKPOINT_EVERY`
pages or so written, beside the commits; a checkpoint never blocks writers
in WAL mode.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from torua.node.sqlite_schema import BUMP_MAX, PURGE, UPSERT

__all__ = ["CHECKPOINT_EVERY", "INLINE_ROWS", "GroupCommit", "WriteOp"]

log = logging.getLogger(__name__)

MAX_BATCH = 1024  # operations per group commit: bounds one transaction's latency
INLINE_ROWS = 64  # a batch with more rows than this commits on a worker thread
CHECKPOINT_EVERY = 1000  # WAL pages (estimated) between checkpoints: SQLite's default
_PAGES_PER_COMMIT = 3  # a commit rewrites the row's page, shard_stats and meta


@dataclass(slots=True, eq=False)
class WriteOp:
    """One queued write; the commit fills ``result`` or ``error``."""

    shard: int
    rows: list[tuple[str, bytes | None, int]] | None  # None means: drop the shard
    purge_before: float | None = None  # set: purge tombstones written before this time
    done: trio.Event = field(default_factory=trio.Event)
    result: int = 0
    error: BaseException | None = None

    @property
    def heavy(self) -> bool:
        """Touches a whole shard: never on the loop."""
        return self.rows is None or self.purge_before is not None

    def apply(self, conn: sqlite3.Connection) -> int:
        if self.purge_before is not None:
            return conn.execute(PURGE, (self.shard, self.purge_before)).rowcount
        if self.rows is None:
            conn.execute("DELETE FROM kv WHERE shard = ?", (self.shard,))
            conn.execute("DELETE FROM shard_stats WHERE shard = ?", (self.shard,))
            return 0
        now = time.time()
        if len(self.rows) == 1:
            key, value, version = self.rows[0]
            row = (self.shard, key, value, version, now if value is None else None)
            return conn.execute(UPSERT, row).rowcount
        cursor = conn.executemany(
            UPSERT,
            ((self.shard, k, v, ver, now if v is None else None) for k, v, ver in self.rows),
        )
        return cursor.rowcount  # an upsert whose WHERE refused it changes nothing

    def top_version(self) -> int:
        return max((row[2] for row in self.rows or ()), default=0)


class GroupCommit:
    """The writer side of the store; see the module docstring.

    ``checkpoint`` runs one passive checkpoint (called on a worker thread);
    ``committed`` is told of every batch, on the Trio thread, after its
    transaction ended and before any of its writers is woken (the store's read
    cache forgets what the batch touched).
    """

    def __init__(
        self,
        writer: sqlite3.Connection,
        checkpoint: Callable[[], None],
        *,
        fsync: bool,
        name: str,
        committed: Callable[[list[WriteOp]], None] = lambda batch: None,
    ) -> None:
        self._writer = writer
        self._checkpoint = checkpoint
        self._committed = committed
        self._fsync = fsync
        self._name = name
        self.commits = 0  # transactions committed: shows group commit working
        self._pending: list[WriteOp] = []
        self._wakeup = trio.Event()
        self._running = False
        self._stopping = False
        self._stopped = trio.Event()
        self._failed: str | None = None
        self._pages = 0  # estimated WAL pages written since the last checkpoint began
        self._checkpointing = False

    async def submit(self, op: WriteOp) -> int:
        """Queue ``op`` and return its result once the transaction holding it committed.

        If the caller is cancelled while waiting, the write may still be applied.
        """
        if self._failed is not None:
            raise RuntimeError(f"{self._name}: writer failed ({self._failed})")
        if self._stopping:
            raise RuntimeError(f"{self._name} is closed")
        if not self._running:  # started here so it belongs to the run that writes
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name=f"sqlite writer {self._name}")
        self._pending.append(op)
        self._wakeup.set()
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    async def stop(self) -> None:
        """Commit what is queued, then end the writer task and any checkpoint.

        Shielded: a cancelled shutdown must still wait for them, or a worker
        thread could outlive the store (and use its connection after close).
        """
        self._stopping = True
        self._wakeup.set()
        with trio.CancelScope(shield=True):
            if self._running:
                await self._stopped.wait()

    async def _run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await self._commit_loop(nursery)
        except BaseException as exc:  # a bug here must not leave writers waiting forever
            if _only_cancelled(exc):
                self._fail_pending("the Trio run ended before the store was closed")
                raise
            log.exception("%s: sqlite writer failed", self._name)
            self._fail_pending(self._failed or f"{type(exc).__name__}: {exc}")
        finally:
            self._stopped.set()

    async def _commit_loop(self, nursery: trio.Nursery) -> None:
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                with trio.CancelScope(shield=True):
                    if self._fsync or any(op.heavy for op in batch) or _rows(batch) > INLINE_ROWS:
                        await trio.to_thread.run_sync(self._commit_batch, batch)
                    else:
                        self._commit_batch(batch)
            except BaseException as exc:
                # Refuse new writes before anyone learns of this one's failure.
                self._failed = f"{type(exc).__name__}: {exc}"
                for op in batch:
                    op.error = op.error or exc
                raise
            finally:
                self._committed(batch)
                for op in batch:
                    op.done.set()
            self._pages += _PAGES_PER_COMMIT + _rows(batch) // 8
            if self._pages >= CHECKPOINT_EVERY and not self._checkpointing:
                self._pages = 0
                self._checkpointing = True
                nursery.start_soon(self._run_checkpoint)

    async def _run_checkpoint(self) -> None:
        try:
            with trio.CancelScope(shield=True):  # the thread's connection must be free at close
                await trio.to_thread.run_sync(self._checkpoint)
        except sqlite3.Error as exc:  # e.g. busy: the next one catches up
            log.warning("%s: checkpoint failed (%s)", self._name, exc)
        finally:
            self._checkpointing = False

    def _commit_batch(self, ops: list[WriteOp]) -> None:
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

    def _transaction(self, ops: list[WriteOp]) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        results = [op.apply(conn) for op in ops]
        conn.execute(BUMP_MAX, (max(op.top_version() for op in ops),))
        conn.execute("COMMIT")
        self.commits += 1
        for op, result in zip(ops, results, strict=True):
            op.result = result

    def _fail_pending(self, why: str) -> None:
        self._failed = why
        for op in self._pending:
            op.error = RuntimeError(f"{self._name}: writer failed ({why})")
            op.done.set()
        self._pending.clear()


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def _rows(batch: list[WriteOp]) -> int:
    return sum(len(op.rows or ()) for op in batch)
