"""Send one write to every copy of its shard that must have it, and judge the answers.

A write (one key, or a bulk request's batch for one shard) goes concurrently
to every authoritative copy (in sync, or handing over after a move) and to
every copy being filled. It is acknowledged only when every authoritative copy
has *applied* it: a copy that answers "not applied, I hold a newer version"
raises :class:`StaleVersion` and the caller retries with a larger version. An
authoritative copy that fails leaves the in-sync set, and that change is saved
*before* the client hears back and before the copy stops counting for anyone
(it waits in ``state.dropping`` meanwhile), so no later read can reach a copy
that misses an acknowledged write, even after a coordinator crash.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from torua.cluster import Shard
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.nodes.client import NodeUnreachable, Reply
from torua.coordinator.state.state import ClusterState
from torua.errors import BadGateway, ToruaError, Unavailable
from torua.fanout import fan_out
from torua.sim import seam

__all__ = [
    "Judge",
    "NotSent",
    "Replication",
    "Send",
    "SendEach",
    "StaleVersion",
    "unavailable",
]

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[Reply]]
SendEach = Callable[[list[str]], Awaitable[list[Reply | NodeUnreachable]]]
Judge = Callable[[Reply], bool]  # False: the copy answered but did not take the write


class NotSent(Unavailable):
    """No copy could take the write, so none got it: nothing to settle afterwards."""


class StaleVersion(ToruaError):
    """A copy holds a newer version of the key than the one this write carried."""


def unavailable(shard: Shard) -> Unavailable:
    return Unavailable(
        f"no copy of shard {shard.shard_id} is reachable; retry shortly", code="no_copy"
    )


class Replication:
    def __init__(
        self,
        state: ClusterState,
        sync: AssignmentSync,
        tracker: WriteTracker,
        actions: CopyActions,
    ) -> None:
        self._state = state
        self._sync = sync
        self._tracker = tracker
        self._actions = actions

    async def call(self, node_id: str, send: Send) -> Reply:
        """One node call, retried once after telling the node about its copy."""
        record = self._state.registry.get(node_id)
        if record is None:
            raise NodeUnreachable(f"node {node_id} is no longer registered")
        reply = await send(record.addr)
        if reply.status == 404 and reply.error_code == "shard_not_held":
            await self._sync.push(node_id)
            reply = await send(record.addr)
        return reply

    async def replicate(
        self,
        shard_id: int,
        send: Send,
        *,
        expect: int,
        judge: Judge | None = None,
        lowest: int = 0,
        send_each: SendEach | None = None,
    ) -> None:
        """Send one write (a key, or a batch) to every copy that must have it.

        Acknowledged only when every authoritative copy answered ``expect`` and
        ``judge`` accepted the answer; raises 503 when none could be reached,
        502 when none took it, :class:`StaleVersion` when a copy holds newer data.
        ``lowest`` is the smallest version the write carries (0 when unknown): a
        copy that misses it catches up from below it later. ``send_each``, when
        given, sends the same write to several addresses at once (instead of a
        task per copy calling ``send``).
        """
        state = self._state
        shard = state.table.shards[shard_id]
        copies = state.copies
        tracker = self._tracker
        epoch = tracker.begin(shard_id)  # as tracker.writing(), inline: every write
        try:
            authoritative, filling = copies.write_targets(shard_id, state.is_up)
            if not authoritative:
                raise NotSent(str(unavailable(shard)), code="no_copy")
            in_sync = shard.in_sync
            for node_id in shard.copies:
                if node_id not in in_sync and not state.is_up(node_id):
                    tracker.note_missed(shard_id, node_id)
            failed: dict[str, str] = {}
            unreachable: set[str] = set()
            stale: set[str] = set()

            def record(node_id: str, reply: Reply | NodeUnreachable) -> None:
                if isinstance(reply, NodeUnreachable):
                    failed[node_id] = str(reply)
                    unreachable.add(node_id)
                elif reply.status != expect:
                    failed[node_id] = f"HTTP {reply.status}: {reply.body[:200]!r}"
                    if reply.status == 503:  # e.g. its lease lapsed: unavailable, not broken
                        unreachable.add(node_id)
                elif judge is not None and not judge(reply):
                    stale.add(node_id)

            async def one(node_id: str) -> None:
                try:
                    reply: Reply | NodeUnreachable = await self.call(node_id, send)
                except NodeUnreachable as exc:
                    reply = exc
                record(node_id, reply)

            targets = authoritative + filling if filling else authoritative
            if send_each is not None:
                await self._call_each(targets, send, send_each, record)
            elif len(targets) == 1:  # one copy (R = 1): no task to spawn
                await one(targets[0])
            else:
                await fan_out(one, targets)
            for node_id in filling:
                if node_id in failed or node_id in stale:
                    tracker.note_missed(shard_id, node_id)
        finally:
            tracker.end(shard_id, epoch)
        ok, behind = copies.write_done(
            shard_id, authoritative, filling, set(failed), self._state.is_up, lowest
        )
        if not ok:
            if set(failed) <= unreachable:
                raise unavailable(shard)
            raise BadGateway(
                f"no copy of shard {shard_id} took the write: {'; '.join(failed.values())}"
            )
        if behind:
            await self._drop_from_in_sync(shard_id, behind, failed)
        await self._actions.durably(copies.since_saves(shard_id))
        if stale:
            raise StaleVersion(f"shard {shard_id}: {sorted(stale)} hold a newer version")

    async def _call_each(
        self,
        node_ids: list[str],
        send: Send,
        send_each: SendEach,
        record: Callable[[str, Reply | NodeUnreachable], None],
    ) -> None:
        """:meth:`call` for every copy at once, through ``send_each``; each outcome
        goes to ``record``. A node that did not know it holds the shard is told,
        and asked again, as in :meth:`call`."""
        registry = self._state.registry
        addrs: list[str] = []
        known: list[str] = []
        for node_id in node_ids:
            entry = registry.get(node_id)
            if entry is None:
                record(node_id, NodeUnreachable(f"node {node_id} is no longer registered"))
            else:
                known.append(node_id)
                addrs.append(entry.addr)
        if not known:
            return
        again: list[tuple[str, str]] = []
        for node_id, addr, reply in zip(known, addrs, await send_each(addrs), strict=True):
            if (
                isinstance(reply, Reply)
                and reply.status == 404
                and reply.error_code == "shard_not_held"
            ):
                again.append((node_id, addr))
            else:
                record(node_id, reply)

        async def retry(node_id: str, addr: str) -> None:
            await self._sync.push(node_id)
            try:
                reply: Reply | NodeUnreachable = await send(addr)
            except NodeUnreachable as exc:
                reply = exc
            record(node_id, reply)

        if again:
            await fan_out(lambda item: retry(*item), again)

    async def _drop_from_in_sync(
        self, shard_id: int, node_ids: list[str], failed: dict[str, str]
    ) -> None:
        """Take copies that missed a write out of the authoritative set, durably first.

        Until the save completes they still count (for reads and later writes): the
        write they missed is not acknowledged yet, so serving from them is right, and
        a coordinator that crashes meanwhile comes back with them still in the set
        only if no write they missed was acknowledged.
        """
        for node_id in node_ids:
            log.warning(
                "copy of shard %d on %s is out of sync: %s",
                shard_id,
                node_id,
                failed.get(node_id, "down"),
            )
        copies = self._state.copies
        self._state.in_sync_times.note_leaving(shard_id, node_ids, seam.wall_time())
        await self._actions.durably(copies.write_missed(shard_id, node_ids))
        self._actions.now(copies.missed_saved(shard_id, node_ids))
