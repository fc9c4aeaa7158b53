"""Planned shutdowns (``/nodes/{id}/shutdown``) and the timer that ends holds.

The rules of who is held and until when live in ``torua.coordinator.state.shutdowns``;
this service applies an operator's notice, turns a restarting node's own
"I am stopping" (its drain call on SIGTERM) into a hold instead of a drain, and
ends holds whose delay passed, so placement rebuilds their copies elsewhere.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from torua.config import format_duration
from torua.coordinator.control.redistributor import Redistributor
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.shutdowns import Kind
from torua.coordinator.state.state import ClusterState
from torua.errors import NotFound
from torua.timestamps import rfc3339

__all__ = ["PlannedShutdowns"]

log = logging.getLogger(__name__)


class PlannedShutdowns:
    def __init__(
        self,
        state: ClusterState,
        redistributor: Redistributor,
        start_drain: Callable[[str], None],
        persister: Persister,
    ) -> None:
        self._state = state
        self._redistributor = redistributor
        self._start_drain = start_drain  # Operations.start_drain: a drain that answers at once
        self._persister = persister
        self._wake = trio.Event()
        state.shutdowns.on_change = self.kick

    def kick(self) -> None:
        self._wake.set()

    def _known(self, node_id: str) -> None:
        if node_id not in self._state.registry:
            raise NotFound(f"no node {node_id!r}", code="node_not_found")

    def request(self, node_id: str, kind: Kind, delay: float) -> dict[str, Any]:
        """Record the notice; ``remove`` starts moving every copy off now (a drain
        that does not wait), ``restart`` only prepares the hold."""
        self._known(node_id)
        self._state.shutdowns.request(node_id, kind, delay)
        self._persister.mark()
        if kind == "remove":
            self._start_drain(node_id)
        return self.view(node_id)

    def cancel(self, node_id: str) -> None:
        self._known(node_id)
        if not self._state.shutdowns.cancel(node_id):
            raise NotFound(f"node {node_id!r} has no shutdown planned", code="no_shutdown")
        self._persister.mark()
        self._redistributor.replan("reconcile", f"shutdown of {node_id} cancelled")

    def view(self, node_id: str) -> dict[str, Any]:
        self._known(node_id)
        shutdowns = self._state.shutdowns
        record = shutdowns.records.get(node_id)
        if record is None:
            raise NotFound(f"node {node_id!r} has no shutdown planned", code="no_shutdown")
        away = shutdowns.away.get(node_id)
        status = shutdowns.status(node_id)
        if record.kind == "remove":
            status = "complete" if not self._state.held_by(node_id) else "in_progress"
        return {
            "node_id": node_id,
            "type": record.kind,
            "allocation_delay": format_duration(record.allocation_delay),
            "created_at": rfc3339(record.created_at),
            "status": status,
            "left_at": rfc3339(record.left_at),
            "returned_at": rfc3339(record.returned_at),
            "deadline": None if away is None else rfc3339(away.deadline),
            "shards_held": sorted(self._state.table.copies_on(node_id)) if away else [],
        }

    def leaving(self, node_id: str) -> bool:
        """The node says it stops (its drain call). True when a restart is planned:
        its copies are then held, not drained."""
        record = self._state.shutdowns.records.get(node_id)
        if record is None or record.kind != "restart":
            return False
        state = self._state
        held = state.shutdowns.left(
            node_id, replica_delay=state.replica_delay, copies=state.table.replication_factor
        )
        log.info("%s stops for a restart; its copies %s", node_id, "wait" if held else "move")
        self._persister.mark()
        self._redistributor.replan("reconcile", f"{node_id} stops for a restart")
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """End each hold at its deadline, and replan."""
        task_status.started()
        while True:
            wait = self._state.shutdowns.next_wait()
            with trio.move_on_after(math.inf if wait is None else wait):
                await self._wake.wait()
            self._wake = trio.Event()
            expired = self._state.shutdowns.expire()
            for node_id in expired:
                log.warning("%s stayed away past its delay: its copies are rebuilt", node_id)
            if expired:
                self._persister.mark()
                self._redistributor.replan("reconcile", f"delay of {', '.join(expired)} passed")
