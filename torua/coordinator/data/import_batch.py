"""One import request per node for a whole bulk request, not one per shard.

A bulk batch touches every shard, and each shard's write goes to each of its
copies: with 16 shards and R = 2 that was 32 requests for 1,000 keys, and the
per-request cost (HTTP on both sides, Quart on the node) outweighed the
records. :class:`ImportBatcher` stands in for the per-shard send that
:meth:`~torua.coordinator.data.router.Router.replicate` makes: the first shard to
call for a node waits two scheduler checkpoints while the other shards' tasks
(started together) add their frames, then sends them all in one
``POST /shards/import`` and hands each shard its own answer. The
acknowledgement rules stay per shard, in ``replicate``. Coalescing is only an
optimisation: a shard that arrives later (a retry after an assignment push)
simply starts the next batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import trio

from torua.coordinator.nodes.client import NodeClient, NodeUnreachable, Reply
from torua.http.records import encode_sections

__all__ = ["ImportBatcher"]

GATHER_CHECKPOINTS = 2


@dataclass(slots=True, eq=False)
class _Batch:
    parts: list[tuple[int, bytes]] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    replies: list[Reply] | None = None
    error: str | None = None


class ImportBatcher:
    def __init__(self, nodes: NodeClient) -> None:
        self._nodes = nodes
        self._open: dict[str, _Batch] = {}

    async def send(self, addr: str, shard_id: int, frames: bytes) -> Reply:
        """This shard's answer from the node at ``addr``, as a lone import would give it."""
        batch = self._open.get(addr)
        leader = batch is None
        if batch is None:
            batch = self._open[addr] = _Batch()
        index = len(batch.parts)
        batch.parts.append((shard_id, frames))
        if leader:
            try:
                for _ in range(GATHER_CHECKPOINTS):
                    await trio.lowlevel.checkpoint()
                del self._open[addr]
                reply = await self._nodes.import_sections(addr, encode_sections(batch.parts))
                batch.replies = _split(reply, len(batch.parts))
            except NodeUnreachable as exc:
                batch.error = str(exc)
            finally:
                if self._open.get(addr) is batch:
                    del self._open[addr]
                batch.done.set()
        else:
            await batch.done.wait()
        if batch.replies is None:
            raise NodeUnreachable(batch.error or f"{addr}: the batched import was cancelled")
        return batch.replies[index]


def _split(reply: Reply, count: int) -> list[Reply]:
    """Per-section replies; a failure of the whole request is every section's answer."""
    if reply.status != 200:
        return [reply] * count
    try:
        results = json.loads(reply.body)["results"]
        if not isinstance(results, list) or len(results) != count:
            raise ValueError("one result per section expected")
        return [Reply(int(r["status"]), json.dumps(r).encode(), {}) for r in results]
    except (ValueError, KeyError, TypeError) as exc:
        body = json.dumps({"error": "bad_gateway", "message": f"malformed answer: {exc}"})
        return [Reply(502, body.encode(), {})] * count
