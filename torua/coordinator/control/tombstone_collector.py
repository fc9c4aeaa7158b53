"""Tells nodes when to purge old tombstones: the coordinator's half of tombstone GC.

Only the coordinator knows when every copy of a shard is in sync, so each round
it notes which copies are in sync now (the mover's "away longer than the grace"
test reads those times) and asks every node to purge, in the shards where that
is safe, the tombstones older than ``tombstone_grace`` by the node's own clock.
One request per node per round. A node that does not answer keeps its
tombstones a round longer, which is always safe. docs/replication.md,
"Tombstone GC", gives the whole argument.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable

import trio

from torua.cluster.states import NodeStatus
from torua.cluster.tombstone_gc import purgeable
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.state.state import ClusterState
from torua.sim import seam

__all__ = ["TombstoneCollector"]

log = logging.getLogger(__name__)

MAX_ROUND = 60.0  # the in-sync times are never older than this (plus one purge)


class TombstoneCollector:
    def __init__(
        self, state: ClusterState, nodes: NodeClient, *, clock: Callable[[], float] = seam.wall_time
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._clock = clock
        self.purged = 0  # tombstones the nodes reported purged, over this run
        self._busy: set[str] = set()  # nodes whose purge request has not ended

    def round_length(self) -> float:
        """A quarter of the grace (a tombstone lives at most 1.25 x grace), at most a
        minute (so in-sync times stay fresh) and at least 50 ms."""
        return min(max(self._state.tombstone_grace / 4, 0.05), MAX_ROUND)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            last = -math.inf
            while True:
                # Every tick, not every round: a copy that leaves the in-sync set is then
                # known in sync until at most a second before, so a restart shortly after
                # the coordinator started still catches up by delta instead of a wipe.
                self._state.in_sync_times.note(self._state.copies, self._clock())
                # The length is read on every tick: a grace shortened live applies within 1 s.
                if trio.current_time() - last >= self.round_length():
                    last = trio.current_time()
                    self.start_round(nursery)
                await trio.sleep(min(self.round_length(), 1.0))

    def start_round(self, nursery: trio.Nursery) -> None:
        """Note the in-sync copies and send this round's purges. A node still busy
        with (or hung on) the last one is skipped: one slow node never holds up
        the others' rounds."""
        grace = self._state.tombstone_grace
        for node_id, shards in self.plan().items():
            if node_id not in self._busy:
                self._busy.add(node_id)
                nursery.start_soon(self._purge, node_id, shards, grace)

    def plan(self) -> dict[str, list[int]]:
        """Per node, the shards whose tombstones may be purged now."""
        state = self._state
        state.in_sync_times.note(state.copies, self._clock())
        healthy: Callable[[str], bool] = lambda n: state.status_of(n) == NodeStatus.HEALTHY  # noqa: E731
        shards: dict[str, list[int]] = {}
        for shard in state.table.shards:
            # A suspect shard's copies may not agree on a delete yet (suspects.py).
            if shard.shard_id in state.suspects:
                continue
            if purgeable(state.copies, shard.shard_id, healthy):
                for node_id in shard.copies:
                    shards.setdefault(node_id, []).append(shard.shard_id)
        return shards

    async def _purge(self, node_id: str, shards: list[int], grace: float) -> None:
        try:
            await self._send_purge(node_id, shards, grace)
        finally:
            self._busy.discard(node_id)

    async def _send_purge(self, node_id: str, shards: list[int], grace: float) -> None:
        record = self._state.registry.get(node_id)
        if record is None:
            return
        try:
            reply = await self._nodes.purge_tombstones(record.addr, shards, grace)
        except NodeUnreachable as exc:
            log.debug("tombstone purge on %s: %s", node_id, exc)
            return
        if reply.status != 200:
            log.info("tombstone purge on %s: HTTP %d", node_id, reply.status)
            return
        counts = json.loads(reply.body).get("purged", {})
        purged = sum(int(n) for n in counts.values())
        self.purged += purged
        if purged:
            log.info("purged %d tombstones on %s (older than %gs)", purged, node_id, grace)
