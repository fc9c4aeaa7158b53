"""Route client reads and writes to the nodes holding the key's shard.

Writes go to every in-sync copy concurrently and are acknowledged only when
all of them have the write; a copy that fails leaves the in-sync set *before*
the client hears back, so no later read can reach a copy that misses an
acknowledged write. Reads go to the primary and fail over to the other in-sync
copies. A node that answers ``shard_not_held`` has not yet heard of its new
copy: it is told at once and the request is retried there.
"""

from __future__ import annotations

import logging

import trio

from torua.cluster import Shard, shard_for_key
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.node_client import NodeClient, NodeUnreachable, Reply
from torua.coordinator.state import ClusterState
from torua.errors import BadGateway, NotFound, Unavailable

__all__ = ["Router"]

log = logging.getLogger(__name__)


class Router:
    def __init__(self, state: ClusterState, nodes: NodeClient, sync: AssignmentSync) -> None:
        self._state = state
        self._nodes = nodes
        self._sync = sync

    def shard_of(self, key: str) -> Shard:
        return self._state.table.shards[shard_for_key(key, self._state.table.num_shards)]

    def _readable(self, shard: Shard) -> list[str]:
        order = ([shard.primary] if shard.primary else []) + shard.replicas
        return [
            n for n in order if n in shard.in_sync and self._state.status_of(n) != "unhealthy"
        ]

    async def _call(self, node_id: str, shard_id: int, send: object) -> Reply:
        """One node call, retried once after telling the node about its copy."""
        record = self._state.registry.get(node_id)
        if record is None:
            raise NodeUnreachable(f"node {node_id} is no longer registered")
        reply: Reply = await send(record.addr)  # type: ignore[operator]
        if reply.status == 404 and reply.error_code == "shard_not_held":
            await self._sync.push(node_id)
            reply = await send(record.addr)  # type: ignore[operator]
        return reply

    async def get(self, key: str) -> bytes:
        shard = self.shard_of(key)
        candidates = self._readable(shard)
        if not candidates:
            raise Unavailable(f"no copy of shard {shard.shard_id} is available", code="no_copy")
        errors: list[str] = []
        for node_id in candidates:
            try:
                reply = await self._call(
                    node_id, shard.shard_id, lambda addr: self._nodes.get(addr, shard.shard_id, key)
                )
            except NodeUnreachable as exc:
                errors.append(str(exc))
                continue
            if reply.status == 200:
                return reply.body
            if reply.status == 404 and reply.error_code == "key_not_found":
                raise NotFound(f"no key {key!r}", code="key_not_found")
            errors.append(f"{node_id}: HTTP {reply.status}")
        raise BadGateway(f"every copy of shard {shard.shard_id} failed: {'; '.join(errors)}")

    async def write(self, key: str, value: bytes | None) -> None:
        shard = self.shard_of(key)
        targets = self._readable(shard)
        if not targets:
            raise Unavailable(f"no copy of shard {shard.shard_id} is available", code="no_copy")
        version = self._state.next_version()
        failed: dict[str, str] = {}

        async def one(node_id: str) -> None:
            try:
                reply = await self._call(
                    node_id,
                    shard.shard_id,
                    lambda addr: self._nodes.write(addr, shard.shard_id, key, value, version),
                )
            except NodeUnreachable as exc:
                failed[node_id] = str(exc)
                return
            if reply.status != 204:
                failed[node_id] = f"HTTP {reply.status}: {reply.body[:200]!r}"

        async with trio.open_nursery() as nursery:
            for node_id in targets:
                nursery.start_soon(one, node_id)
        if not failed:
            return
        if len(failed) == len(targets):
            raise BadGateway(
                f"no copy of shard {shard.shard_id} took the write: {'; '.join(failed.values())}"
            )
        for node_id in failed:
            # Leave the in-sync set before acknowledging: that copy missed this write.
            shard.in_sync.discard(node_id)
            log.warning(
                "copy of shard %d on %s left the in-sync set: %s",
                shard.shard_id, node_id, failed[node_id],
            )
        if shard.primary in failed:
            survivors = [n for n in shard.copies if n in shard.in_sync]
            shard.copies.remove(survivors[0])
            shard.copies.insert(0, survivors[0])
