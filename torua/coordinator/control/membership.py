"""Who belongs to the cluster: a node joining or coming back, and its removal.

The rules live here rather than in the HTTP handlers so that every way in
(the route, a test, a simulator) applies the same ones. Registering is
idempotent: a node calls it at start and whenever the coordinator answers that
it does not know it; a new incarnation means the node's data is gone, and that
is saved before anything trusts its copies. A node is removed only once it
holds no copy (drain it first), since removing it declares its data gone.
"""

from __future__ import annotations

from torua.cluster.states import NodeStatus
from torua.coordinator.control.health import HealthMonitor
from torua.coordinator.control.incarnations import Incarnations
from torua.coordinator.control.operations import Operations
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.registry import NodeRecord
from torua.coordinator.state.state import ClusterState
from torua.errors import Conflict, NotFound
from torua.events import EventBus, NodeJoined, NodeRemoved

__all__ = ["Membership"]


class Membership:
    def __init__(
        self,
        state: ClusterState,
        monitor: HealthMonitor,
        incarnations: Incarnations,
        persister: Persister,
        bus: EventBus,
        sync: AssignmentSync,
        operations: Operations,
        actions: CopyActions,
    ) -> None:
        self._state = state
        self._monitor = monitor
        self._incarnations = incarnations
        self._persister = persister
        self._bus = bus
        self._sync = sync
        self._operations = operations
        self._actions = actions

    def record_of(self, node_id: str) -> NodeRecord:
        """The node's record; 404 ``node_not_found`` for a node never registered."""
        record = self._state.registry.get(node_id)
        if record is None:
            raise NotFound(f"no node {node_id!r}", code="node_not_found")
        return record

    async def register(
        self,
        node_id: str,
        addr: str,
        capacity: int | None,
        incarnation: str | None,
        max_version: int,
    ) -> None:
        """Join, or come back: watch it, and send it its assignments."""
        state = self._state
        is_new = node_id not in state.registry
        _, changed = state.registry.register(node_id, addr, capacity)
        # A new incarnation means its data is gone: out of the in-sync sets, saved.
        await self._incarnations.observe(node_id, incarnation, max_version)
        healthy = state.status_of(node_id) == NodeStatus.HEALTHY
        if state.shutdowns.registered(node_id, healthy=healthy):
            self._persister.mark()
        self._monitor.watch(node_id, addr)
        if is_new or changed:
            self._persister.mark()
            await self._bus.publish(NodeJoined(node_id=node_id, addr=addr, rejoined=not is_new))
        self._sync.mark(node_id)

    async def remove(self, node_id: str) -> None:
        """Forget a node that holds no copy; 409 ``node_holds_shards`` otherwise."""
        self.record_of(node_id)
        state = self._state
        held = state.held_by(node_id)
        if held:
            raise Conflict(
                f"node {node_id!r} still holds copies of shards {held}; drain it first",
                code="node_holds_shards",
            )
        state.registry.remove(node_id)
        self._operations.forget(node_id)
        self._monitor.unwatch(node_id)
        state.health_status.pop(node_id, None)
        # Its data is declared gone: shards that lost copies on it are complete again.
        await self._actions.durably(state.copies.node_removed(node_id))
        await self._bus.publish(NodeRemoved(node_id=node_id))
