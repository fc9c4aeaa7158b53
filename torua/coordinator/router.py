"""Route client reads and writes to the nodes holding the key's shard.

Writes go concurrently to every authoritative copy (in sync, or handing over
after a move) and to every copy being filled; they are acknowledged only when
every authoritative copy has them. An authoritative copy that fails leaves the
in-sync set, and that change is on disk, *before* the client hears back, so
no later read can reach a copy that misses an acknowledged write. Reads go to
the primary and fail over to the other authoritative copies. A shard that lost
its only copy with a failed node answers 503 for a miss, never a false 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from torua.cluster import Shard, shard_for_key
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.node_client import NodeClient, NodeUnreachable, Reply
from torua.coordinator.persistence import Persister
from torua.coordinator.state import ClusterState
from torua.coordinator.write_tracker import WriteTracker
from torua.errors import BadGateway, NotFound, Unavailable

__all__ = ["Router"]

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[Reply]]


class Router:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeClient,
        sync: AssignmentSync,
        tracker: WriteTracker,
        persister: Persister,
        on_copy_dropped: Callable[[], None] = lambda: None,
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._sync = sync
        self._tracker = tracker
        self._persister = persister
        self._on_copy_dropped = on_copy_dropped

    def shard_of(self, key: str) -> Shard:
        return self._state.table.shards[shard_for_key(key, self._state.table.num_shards)]

    async def _call(self, node_id: str, send: Send) -> Reply:
        """One node call, retried once after telling the node about its copy."""
        record = self._state.registry.get(node_id)
        if record is None:
            raise NodeUnreachable(f"node {node_id} is no longer registered")
        reply = await send(record.addr)
        if reply.status == 404 and reply.error_code == "shard_not_held":
            await self._sync.push(node_id)
            reply = await send(record.addr)
        return reply

    def _unavailable(self, shard: Shard) -> Unavailable:
        return Unavailable(
            f"no copy of shard {shard.shard_id} is reachable; retry shortly", code="no_copy"
        )

    async def get(self, key: str) -> bytes:
        shard = self.shard_of(key)
        candidates = self._state.readable_copies(shard.shard_id)
        if not candidates:
            raise self._unavailable(shard)
        errors: list[str] = []
        unreachable = 0
        for node_id in candidates:
            try:
                reply = await self._call(
                    node_id, lambda addr: self._nodes.get(addr, shard.shard_id, key)
                )
            except NodeUnreachable as exc:
                errors.append(str(exc))
                unreachable += 1
                continue
            if reply.status == 200:
                return reply.body
            if reply.status == 404 and reply.error_code == "key_not_found":
                if self._state.lost.get(shard.shard_id):
                    raise Unavailable(
                        f"shard {shard.shard_id} lost its copy on "
                        f"{', '.join(sorted(self._state.lost[shard.shard_id]))}; the key may be "
                        "there, so this miss is not final",
                        code="incomplete_shard",
                    )
                raise NotFound(f"no key {key!r}", code="key_not_found")
            errors.append(f"{node_id}: HTTP {reply.status}")
        if unreachable == len(candidates):
            raise self._unavailable(shard)
        raise BadGateway(f"every copy of shard {shard.shard_id} failed: {'; '.join(errors)}")

    async def write(self, key: str, value: bytes | None) -> None:
        shard = self.shard_of(key)
        version = self._state.next_version()
        await self.replicate(
            shard.shard_id,
            lambda addr: self._nodes.write(addr, shard.shard_id, key, value, version),
            expect=204,
        )

    async def replicate(self, shard_id: int, send: Send, *, expect: int) -> None:
        """Send one write (a key, or a batch) to every copy that must have it.

        Acknowledged only when every authoritative copy answered ``expect``;
        raises 503 when none could be reached, 502 when none took it.
        """
        shard = self._state.table.shards[shard_id]
        with self._tracker.writing(shard_id):
            authoritative = self._state.readable_copies(shard_id)
            if not authoritative:
                raise self._unavailable(shard)
            # Authoritative copies that are down cannot take this write: once it is
            # acknowledged they no longer hold every write, so they leave the set below.
            down = [n for n in shard.copies if n in shard.in_sync and n not in authoritative]
            down += [n for n in self._state.retiring.get(shard_id, ()) if n not in authoritative]
            filling = [
                n
                for n in shard.copies
                if n not in shard.in_sync and self._state.is_up(n) and n not in authoritative
            ]
            for node_id in shard.copies:
                if node_id not in shard.in_sync and not self._state.is_up(node_id):
                    self._tracker.note_missed(shard_id, node_id)
            failed: dict[str, str] = {}
            unreachable: set[str] = set()

            async def one(node_id: str) -> None:
                try:
                    reply = await self._call(node_id, send)
                except NodeUnreachable as exc:
                    failed[node_id] = str(exc)
                    unreachable.add(node_id)
                    return
                if reply.status != expect:
                    failed[node_id] = f"HTTP {reply.status}: {reply.body[:200]!r}"
                    if reply.status == 503:  # e.g. its lease lapsed: unavailable, not broken
                        unreachable.add(node_id)

            targets = authoritative + filling
            if len(targets) == 1:  # one copy (R = 1): no task to spawn
                await one(targets[0])
            else:
                async with trio.open_nursery() as nursery:
                    for node_id in targets:
                        nursery.start_soon(one, node_id)
        for node_id in filling:
            if node_id in failed:
                self._tracker.note_missed(shard_id, node_id)
        lost = [n for n in authoritative if n in failed]
        if not lost and not down:
            return
        if lost and len(lost) == len(authoritative):
            if set(lost) <= unreachable:
                raise self._unavailable(shard)
            raise BadGateway(
                f"no copy of shard {shard_id} took the write: {'; '.join(failed.values())}"
            )
        for node_id in lost + down:
            # Leave the authoritative set before acknowledging: that copy missed this write.
            shard.in_sync.discard(node_id)
            self._state.retiring.get(shard_id, set()).discard(node_id)
            log.warning(
                "copy of shard %d on %s is out of sync: %s",
                shard_id,
                node_id,
                failed.get(node_id, "down"),
            )
        await self._persister.flush()
        self._on_copy_dropped()

    async def read_from_copies(self, shard_id: int, send: Send) -> Reply:
        """The first authoritative copy's 200 answer, primary first."""
        shard = self._state.table.shards[shard_id]
        candidates = self._state.readable_copies(shard_id)
        errors: list[str] = []
        for node_id in candidates:
            try:
                reply = await self._call(node_id, send)
            except NodeUnreachable as exc:
                errors.append(str(exc))
                continue
            if reply.status == 200:
                return reply
            errors.append(f"{node_id}: HTTP {reply.status}")
        if len(errors) == len(candidates) and all("HTTP" not in e for e in errors):
            raise self._unavailable(shard)
        raise BadGateway(f"every copy of shard {shard_id} failed: {'; '.join(errors)}")
