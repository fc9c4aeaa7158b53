"""Turn health and membership events into shard placement, and apply it.

The placement rules live in the pure ``torua.cluster.placement`` module; this
service decides *when* to run which rule and makes the result real: it records
why each copy moved, publishes the moves, and has the assignment sync tell the
nodes concerned. It is the only consumer of health events that changes the
shard table, so placement decisions happen one at a time, in event order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

from torua.cluster import Move, NodeState, ShardTable, assign_primary, rebalance, reconcile
from torua.cluster.instructions import Announce
from torua.cluster.states import NodeMode, NodeStatus
from torua.coordinator.control.mover import Mover
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState
from torua.events import ClusterEvent, NodeHealthChanged, NodeJoined, NodeRemoved

__all__ = ["Redistributor"]

log = logging.getLogger(__name__)

Plan = Callable[[ShardTable, Mapping[str, NodeState]], list[Move]]


class Redistributor:
    def __init__(
        self,
        state: ClusterState,
        actions: CopyActions,
        *,
        mover: Mover,
        tracker: WriteTracker,
        persister: Persister,
    ) -> None:
        self._state = state
        self._actions = actions
        self._mover = mover
        self._tracker = tracker
        self._persister = persister
        self._pending: str | None = None

    def apply(self, plan: Plan, why: str) -> list[Move]:
        """Run one placement rule against the live table and make its moves known.

        Placement rewrites ``copies`` at once; the copy state machine then makes
        the data side follow (torua.cluster.copies): every new copy starts out of
        sync (the mover fills it), an in-sync copy on a live node that placement
        replaced keeps serving ("retiring") until its successor is whole, and
        only where no live authoritative copy is left do new copies start empty,
        with the dead ones recorded as lost. A move whose target died before it
        was whole is rolled back first, so placement plans from the copy that
        still holds the data.
        """
        state = self._state
        copies = state.copies
        rolled_back = copies.before_placement(state.is_up)
        for item in rolled_back:
            if isinstance(item, Announce) and item.source is not None:
                log.warning(
                    "shard %d: the copy on %s failed before it was filled; %s serves it again",
                    item.shard_id,
                    item.source,
                    item.target,
                )
                # Should the failed copy come back, its partial fill must not count.
                self._tracker.note_missed(item.shard_id, item.source)
                self._tracker.bump(item.shard_id)
        self._actions.now(rolled_back)
        before = {s.shard_id: (list(s.copies), set(s.in_sync)) for s in state.table.shards}
        moves = plan(state.table, state.node_states())
        for shard in state.table.shards:
            old_copies, old_in_sync = before[shard.shard_id]
            for node_id in old_copies:
                if node_id not in shard.copies and node_id not in old_in_sync:
                    # A copy being filled that placement took away: should it come back,
                    # its fill must not count (it missed the writes in between).
                    self._tracker.note_missed(shard.shard_id, node_id)
        # Every shard is settled, not only those with moves: a failure can leave a
        # shard with no live authoritative copy without moving anything of it.
        placed = copies.placed(moves, before, state.is_up, state.version_hwm)
        for shard_id, newly in copies.newly_lost.items():
            if newly:
                log.warning(
                    "shard %d lost its only authoritative copies on %s; new copies start "
                    "empty and the shard is incomplete until they return",
                    shard_id,
                    ", ".join(sorted(newly)),
                )
        if moves:
            log.info("%s: %d shard copy moves", why, len(moves))
            for shard_id in {m.shard_id for m in moves}:
                self._tracker.bump(shard_id)
        self._actions.now(placed)
        return moves

    def reconcile(self, why: str) -> list[Move]:
        return self.apply(reconcile, why)

    def rebalance(self, why: str) -> list[Move]:
        return self.apply(rebalance, why)

    def assign(self, shard_id: int, node_id: str) -> list[Move]:
        """Move a shard's primary; ValueError when placement refuses."""
        return self.apply(
            lambda table, nodes: assign_primary(table, shard_id, node_id, nodes),
            f"assign shard {shard_id} to {node_id}",
        )

    def _placement_ready(self) -> bool:
        """False while a node holding copies has not been probed yet.

        After a coordinator restart every node is ``unknown``; placing shards
        before they have answered would strip them of copies they still hold
        (a node not yet heard from may still hold them).
        """
        state = self._state
        holders = {n for s in state.table.shards for n in s.copies}
        holders.update(n for nodes in state.retiring.values() for n in nodes)
        return all(state.status_of(n) != NodeStatus.UNKNOWN for n in holders if n in state.registry)

    def _decide(self, event: ClusterEvent) -> str | None:
        """Which placement rule an event calls for: "rebalance", "reconcile" or None."""
        match event:
            case NodeHealthChanged(node_id=node_id, new=new):
                self._state.health_status[node_id] = new
                self._persister.mark()  # followers show node status from the saved state
                record = self._state.registry.get(node_id)
                if record is None:
                    return None
                if record.mode == NodeMode.MAINTENANCE and record.ever_healthy:
                    return None  # its copies are leaving anyway: a failure moves nothing
                self._note_away(node_id, new, record.mode)
                if new == NodeStatus.HEALTHY and not record.ever_healthy:
                    record.ever_healthy = True
                    self._persister.mark()
                    return "rebalance"  # a new node gets its share
                # A returning node gets nothing back; it may only refill short shards.
                return "reconcile"
            case NodeRemoved(node_id=node_id):
                self._state.health_status.pop(node_id, None)
                self._state.shutdowns.forget(node_id)
                return "reconcile"
            case NodeJoined(rejoined=True):
                return "reconcile"
            case _:
                return None

    def _note_away(self, node_id: str, new: str, mode: str) -> None:
        """A node that fails may be held for its delay; one that passes again is back."""
        shutdowns, state = self._state.shutdowns, self._state
        if new == NodeStatus.UNHEALTHY and mode == NodeMode.ACTIVE:
            if shutdowns.left(
                node_id, replica_delay=state.replica_delay, copies=state.table.replication_factor
            ):
                away = shutdowns.away[node_id]
                log.warning(
                    "%s is away (%s): its copies wait %.0fs for it before they are rebuilt",
                    node_id,
                    away.reason,
                    away.delay,
                )
                self._persister.mark()
        elif new == NodeStatus.HEALTHY and shutdowns.healthy(node_id):
            log.info("%s is back within its delay: its copies catch up", node_id)
            self._persister.mark()

    def handle(self, event: ClusterEvent) -> None:
        wanted = self._decide(event)
        if wanted is not None:
            self.replan(wanted, f"after {type(event).__name__}")

    def replan(self, rule: str, why: str) -> None:
        """Run ``rule`` now, or as soon as every node holding copies has been probed."""
        if rule == "rebalance" or self._pending != "rebalance":
            self._pending = rule
        if not self._placement_ready():
            log.info("placement deferred (%s): nodes holding copies not probed yet", why)
            return
        rule, self._pending = self._pending or rule, None
        if rule == "rebalance":
            self.rebalance(why)
        else:
            self.reconcile(why)
        self._mover.kick()

    async def run(
        self,
        events: trio.MemoryReceiveChannel[ClusterEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        async with events:
            async for event in events:
                self.handle(event)
