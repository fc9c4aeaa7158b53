"""Recognise a node that lost its data before any read, write or fill trusts it.

A node's incarnation names the data it holds: a durable node keeps one per
data directory, an in-memory node makes one per process. When a node answers
with an incarnation other than the one on record (at registration, or when it
refuses an assignment meant for the old one), its copies are empty: they leave
the in-sync and retiring sets, the change is saved, and the mover refills them.
Nodes serve a shard only once an assignment naming their current incarnation
reached them, so this happens before any request relies on those copies,
also when the coordinator restarted meanwhile and never saw the node go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torua.coordinator.persistence import Persister
from torua.coordinator.state import ClusterState
from torua.coordinator.versions import Versions

__all__ = ["Incarnations", "forget_copies"]

log = logging.getLogger(__name__)


def forget_copies(state: ClusterState, node_id: str) -> list[int]:
    """Mark every copy on ``node_id`` empty; the shards whose data is gone for good.

    A shard whose only authoritative copies were on this node has nothing left to
    fill from: its empty copy starts in sync (it takes every write from now on).
    """
    gone: list[int] = []
    for shard in state.table.shards:
        retiring = state.retiring.get(shard.shard_id, set())
        had = node_id in shard.in_sync or node_id in retiring
        shard.in_sync.discard(node_id)
        retiring.discard(node_id)
        state.lost.get(shard.shard_id, set()).discard(node_id)
        others = (shard.in_sync | retiring) - {node_id}
        if had and not others and node_id in shard.copies:
            shard.in_sync.add(node_id)
            gone.append(shard.shard_id)
    return gone


class Incarnations:
    def __init__(
        self,
        state: ClusterState,
        persister: Persister,
        versions: Versions,
        on_forgotten: Callable[[], None],
    ) -> None:
        self._state = state
        self._persister = persister
        self._versions = versions
        self._on_forgotten = on_forgotten

    async def observe(self, node_id: str, incarnation: str | None, max_version: int = 0) -> bool:
        """Record what the node reports; True when its earlier data is gone."""
        self._versions.observe(max_version)
        record = self._state.registry.get(node_id)
        if record is None or incarnation is None or record.incarnation == incarnation:
            return False
        known, record.incarnation = record.incarnation, incarnation
        if known is None:  # first seen: nothing was trusted under another name
            self._persister.mark()
            return False
        gone = forget_copies(self._state, node_id)
        log.warning("node %s restarted without its data: its copies are refilled", node_id)
        if gone:
            log.error(
                "node %s held the only copies of shards %s: their data is lost", node_id, gone
            )
        await self._persister.flush()
        self._on_forgotten()
        return True
