"""Operator actions on nodes: maintenance, drain, evacuation.

All three work the same way underneath: the node's mode makes placement move
its copies elsewhere (it is "leaving"), and the copies it held keep serving as
retiring copies until their successors are filled. They differ in what the
caller waits for and what happens afterwards:

* maintenance (several nodes, on/off): returns at once; probe failures of a
  node in maintenance move nothing, since the copies are already leaving;
* drain (graceful leave): waits until the node holds nothing, answers how many
  copies moved; the node may then stop;
* evacuate: returns at once; progress is read from ``evacuation(node)``; the
  node stays ``evacuating`` (no new copies) until it is removed or set active.

A copy that no other node can take is not moved (Dask's rule: retire only what
can be re-homed); a drain then answers 409 and the node stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from torua.cluster.states import NodeMode
from torua.coordinator.control.mover import Mover
from torua.coordinator.control.planned import PlannedShutdowns
from torua.coordinator.control.redistributor import Redistributor
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.registry import NodeRecord
from torua.coordinator.state.state import ClusterState
from torua.errors import Conflict, NotFound
from torua.events import ClusterEvent, MoveProgress, NodeModeChanged

__all__ = ["Evacuation", "Operations"]


@dataclass(slots=True)
class Evacuation:
    total: int
    state: str = "running"
    reason: str | None = None


class Operations:
    def __init__(
        self,
        state: ClusterState,
        redistributor: Redistributor,
        mover: Mover,
        persister: Persister,
        publish: Callable[[ClusterEvent], None],
    ) -> None:
        self._state = state
        self._redistributor = redistributor
        self._mover = mover
        self._persister = persister
        self._publish = publish
        self._evacuations: dict[str, Evacuation] = {}
        self.planned: PlannedShutdowns  # planned restarts and removals, set once built

    def _record(self, node_id: str) -> NodeRecord:
        record = self._state.registry.get(node_id)
        if record is None:
            raise NotFound(f"no node {node_id!r}", code="node_not_found")
        return record

    def _set_mode(self, node_id: str, mode: NodeMode) -> bool:
        record = self._record(node_id)
        if record.mode == mode:
            return False
        old, record.mode = record.mode, mode
        self._persister.mark()
        self._publish(NodeModeChanged(node_id=node_id, old=old, new=mode))
        return True

    def set_maintenance(self, node_ids: list[str], enabled: bool) -> dict[str, str]:
        for node_id in node_ids:
            self._record(node_id)  # all known, or nothing changes
        for node_id in node_ids:
            self._set_mode(node_id, NodeMode.MAINTENANCE if enabled else NodeMode.ACTIVE)
            if not enabled:
                self._evacuations.pop(node_id, None)
        self._redistributor.replan("reconcile", f"maintenance {'on' if enabled else 'off'}")
        return {n: self._record(n).mode for n in node_ids}

    def _stuck(self, node_id: str) -> list[int]:
        """Shards whose copy on the node placement could not re-home: still placed
        there, or handing over to no successor at all."""
        state = self._state
        stuck = set(state.table.copies_on(node_id))
        stuck.update(
            s
            for s, nodes in state.retiring.items()
            if node_id in nodes and not state.table.shards[s].copies
        )
        return sorted(stuck)

    def start_drain(self, node_id: str) -> None:
        """Begin a graceful leave without waiting for it (``PUT .../shutdown``
        with ``type: remove``); copies no node can take stay until one can."""
        self._set_mode(node_id, NodeMode.DRAINING)
        self._redistributor.replan("reconcile", f"drain {node_id}")

    async def drain(self, node_id: str, *, wait: float) -> int:
        record = self._record(node_id)
        held = len(self._state.held_by(node_id))
        previous = record.mode
        self._set_mode(node_id, NodeMode.DRAINING)
        self._redistributor.replan("reconcile", f"drain {node_id}")
        if stuck := self._stuck(node_id):
            self._set_mode(node_id, previous)
            self._redistributor.replan("reconcile", f"drain of {node_id} refused")
            raise Conflict(
                f"cannot drain {node_id}: no other node can take shards {stuck}",
                code="cannot_drain",
            )
        with trio.move_on_after(wait) as waited:
            await self._mover.wait_released(node_id)
        if waited.cancelled_caught:
            raise Conflict(
                f"drain of {node_id} did not finish within {wait:.0f}s; it is still draining",
                code="drain_timeout",
            )
        self._publish(MoveProgress(node_id=node_id, total=held, moved=held, state="done"))
        return held

    def evacuate(self, node_id: str) -> Evacuation:
        held = len(self._state.held_by(node_id))
        self._set_mode(node_id, NodeMode.EVACUATING)
        self._redistributor.replan("reconcile", f"evacuate {node_id}")
        evacuation = Evacuation(total=held)
        if stuck := self._stuck(node_id):
            evacuation.state = "failed"
            evacuation.reason = f"no other node can take shards {stuck}"
        self._evacuations[node_id] = evacuation
        return evacuation

    def evacuation(self, node_id: str) -> dict[str, object]:
        self._record(node_id)
        evacuation = self._evacuations.get(node_id)
        if evacuation is None:
            raise NotFound(f"node {node_id!r} is not being evacuated", code="no_evacuation")
        remaining = len(self._state.held_by(node_id))
        if evacuation.state == "running" and remaining == 0:
            evacuation.state = "done"
        moved = max(0, evacuation.total - remaining)
        return {
            "node_id": node_id,
            "total": evacuation.total,
            "moved": moved,
            "remaining": remaining,
            "state": evacuation.state,
            "reason": evacuation.reason,
        }

    def forget(self, node_id: str) -> None:
        self._evacuations.pop(node_id, None)
