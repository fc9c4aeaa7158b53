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

from torua.cluster.instructions import Save
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.versions import Versions
from torua.coordinator.state.state import ClusterState

__all__ = ["Incarnations"]

log = logging.getLogger(__name__)


class Incarnations:
    def __init__(
        self,
        state: ClusterState,
        actions: CopyActions,
        versions: Versions,
    ) -> None:
        self._state = state
        self._actions = actions
        self._versions = versions

    async def observe(self, node_id: str, incarnation: str | None, max_version: int = 0) -> bool:
        """Record what the node reports; True when its earlier data is gone."""
        self._versions.observe(max_version)
        record = self._state.registry.get(node_id)
        if record is None or incarnation is None or record.incarnation == incarnation:
            return False
        known, record.incarnation = record.incarnation, incarnation
        if known is None:  # first seen: nothing was trusted under another name
            self._actions.now([Save("a node's incarnation")])
            return False
        instructions, gone = self._state.copies.data_lost(node_id)
        log.warning("node %s restarted without its data: its copies are refilled", node_id)
        if gone:
            log.error(
                "node %s held the only copies of shards %s: their data is lost", node_id, gone
            )
        await self._actions.durably(instructions)
        return True
