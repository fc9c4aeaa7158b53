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
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.state import ClusterState
from torua.events import (
    ClusterEvent,
    NodeHealthChanged,
    NodeJoined,
    NodeModeChanged,
    NodeRemoved,
    ShardMoved,
)

__all__ = ["Redistributor"]

log = logging.getLogger(__name__)

Plan = Callable[[ShardTable, Mapping[str, NodeState]], list[Move]]


class Redistributor:
    def __init__(
        self, state: ClusterState, sync: AssignmentSync, publish: Callable[[ClusterEvent], None]
    ) -> None:
        self._state = state
        self._sync = sync
        self._publish = publish

    def apply(self, plan: Plan, why: str) -> list[Move]:
        """Run one placement rule against the live table and make its moves known."""
        moves = plan(self._state.table, self._state.node_states())
        touched: set[str] = set()
        for move in moves:
            touched.update(n for n in (move.source, move.target) if n is not None)
            self._publish(
                ShardMoved(
                    shard_id=move.shard_id,
                    source=move.source,
                    target=move.target,
                    primary=move.primary,
                    reason=move.reason,
                )
            )
        if moves:
            log.info("%s: %d shard copy moves", why, len(moves))
            self._sync.mark(*touched)
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

    def handle(self, event: ClusterEvent) -> None:
        match event:
            case NodeHealthChanged(node_id=node_id, old=old, new=new):
                self._state.health_status[node_id] = new
                record = self._state.registry.get(node_id)
                if record is None:
                    return
                if new == "healthy" and not record.ever_healthy:
                    record.ever_healthy = True
                    self.rebalance(f"node {node_id} joined")
                elif new == "healthy":
                    # A returning node gets nothing back; it may only refill short shards.
                    self.reconcile(f"node {node_id} recovered")
                elif new == "unhealthy":
                    self.reconcile(f"node {node_id} unhealthy (was {old})")
            case NodeRemoved(node_id=node_id):
                self._state.health_status.pop(node_id, None)
                self.reconcile(f"node {node_id} removed")
            case NodeModeChanged(node_id=node_id, new=new):
                self.reconcile(f"node {node_id} is now {new}")
            case NodeJoined(node_id=node_id, rejoined=True):
                self.reconcile(f"node {node_id} registered again")
            case _:
                pass

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
