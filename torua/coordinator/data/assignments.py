"""Tell each node which shard copies it holds, and renew its lease.

A node serves only the copies it has been told about, so every table
change must reach the nodes it touches. Changes mark nodes dirty; one task
pushes to all dirty nodes concurrently, each push with its own deadline, and
keeps a node dirty until its push succeeds. Every interval each node also gets
a fresh copy: the renewal a node needs to keep its lease and to know it is not
forgotten.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.state.state import ClusterState
from torua.fanout import fan_out
from torua.sim import seam

__all__ = ["AssignmentSync"]

# Not the probe timeout: an operator may set that very short, and a push that can
# never finish in time would let every node's lease lapse.
PUSH_DEADLINE = 2.0

log = logging.getLogger(__name__)


# (node id, the incarnation it reported, its largest version)
OnIncarnation = Callable[[str, str | None, int], Awaitable[object]]


async def _ignore(node_id: str, incarnation: str | None, max_version: int) -> None:
    return None


class AssignmentSync:
    def __init__(
        self, state: ClusterState, nodes: NodeClient, on_incarnation: OnIncarnation = _ignore
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._dirty: set[str] = set()
        self._wake = trio.Event()
        # Numbered per run, not by a clock: a node takes a new session's first push.
        self._session = seam.current().unique_hex()
        self._seq = 0
        self.on_incarnation = on_incarnation

    def mark(self, *node_ids: str) -> None:
        self._dirty.update(node_ids)
        self._wake.set()

    def message_for(self, node_id: str) -> dict[str, Any]:
        health = self._state.health
        self._seq += 1
        message: dict[str, Any] = {
            "type": "assignment",
            "shards": self._state.held_by(node_id),
            "seq": self._seq,
            "session": self._session,
            "lease": health.lease,
            "interval": health.interval,
        }
        record = self._state.registry.get(node_id)
        if record is not None and record.incarnation is not None:
            message["incarnation"] = record.incarnation
        return message

    async def push(self, *node_ids: str) -> dict[str, str | None]:
        """Push now to these nodes concurrently; returns each node's error or None."""

        async def one(node_id: str) -> str | None:
            record = self._state.registry.get(node_id)
            if record is None:
                return "unknown node"
            try:
                reply = await self._nodes.control(
                    record.addr, self.message_for(node_id), deadline=PUSH_DEADLINE
                )
                if reply.status == 409 and reply.error_code == "incarnation_mismatch":
                    # It lost its data: its copies leave the in-sync sets (saved) first,
                    # then it gets the assignment under its new incarnation.
                    await self._report(node_id, reply)
                    reply = await self._nodes.control(
                        record.addr, self.message_for(node_id), deadline=PUSH_DEADLINE
                    )
            except NodeUnreachable as exc:
                return str(exc)
            if reply.status == 200:
                await self._report(node_id, reply)
            return None if reply.status == 200 else f"HTTP {reply.status}"

        targets = list(set(node_ids))
        results = dict(zip(targets, await fan_out(one, targets), strict=True))
        for node_id, error in results.items():
            if error is None:
                self._dirty.discard(node_id)
            else:
                self._dirty.add(node_id)
                log.debug("assignment push to %s failed: %s", node_id, error)
        return results

    async def _report(self, node_id: str, reply: Any) -> None:
        try:
            body = json.loads(reply.body)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        incarnation = body.get("incarnation")
        max_version = body.get("max_version")
        await self.on_incarnation(
            node_id,
            incarnation if isinstance(incarnation, str) else None,
            max_version if isinstance(max_version, int) else 0,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last_renewal = -math.inf
        while True:
            # Recomputed every time round: a shorter interval set live through
            # /cluster/config must shorten the wait already under way, or leases
            # granted under the new interval would lapse before the next renewal.
            with trio.move_on_at(last_renewal + self._state.health.interval):
                await self._wake.wait()
            self._wake = trio.Event()
            targets = set(self._dirty)
            if trio.current_time() >= last_renewal + self._state.health.interval:
                # Every node requests may still be routed to keeps its lease.
                targets.update(r.id for r in self._state.registry.all() if self._state.is_up(r.id))
                last_renewal = trio.current_time()
            targets &= {r.id for r in self._state.registry.all()}
            self._dirty &= {r.id for r in self._state.registry.all()}
            if targets:
                await self.push(*targets)
            if self._dirty:
                # Failed pushes wait a little rather than spin against a dead node.
                await trio.sleep(min(1.0, self._state.health.interval / 2))
                self._wake.set()
