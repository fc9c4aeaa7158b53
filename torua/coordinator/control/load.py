"""The coordinator's view of load: per-copy request rates and 15 minutes of history.

On a fixed schedule (the probe interval, at least :data:`MIN_POLL` apart) it
reads ``GET /info`` from every node that may serve, all at once, each read
bounded by its own deadline so a hung node delays no other. From the counters
there it keeps each copy's request rate (for ``GET /shards`` and for
``POST /rebalance {"by": "load"}``), and after each round it adds one point
per node (request rate, mean probe latency since the last point) and per
shard (request rate over its copies, size of its primary) to ring buffers
that the dashboard plots.

Probe latency comes from the health monitor's ``on_probe`` hook rather than a
probe of its own: the monitor already times every probe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import trio

from torua.coordinator.control.health import ProbeRecord
from torua.coordinator.control.load_history import MAX_POINTS, WINDOW, CopyRate, Series, mean
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.state.state import ClusterState
from torua.fanout import fan_out
from torua.sim import seam

__all__ = ["MIN_POLL", "LoadMonitor"]

log = logging.getLogger(__name__)

MIN_POLL = 1.0
"""Seconds between polls at least: the history keeps one point per poll."""

POLL_DEADLINE = 2.0
"""A node's read is cut off after this, or after one poll period if shorter: a hung
node never delays the next round."""


class LoadMonitor:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeClient,
        *,
        wall_clock: Callable[[], float] = seam.wall_time,
    ) -> None:
        self._state = state
        self._nodes = nodes
        self._wall_clock = wall_clock
        self._copies: dict[tuple[int, str], CopyRate] = {}
        self._sizes: dict[int, tuple[int, int]] = {}  # shard -> (keys, bytes) on its primary
        self._latencies: dict[str, list[float]] = {}  # probe latencies since the last point
        self._node_series: dict[str, Series] = {}
        self._shard_series: dict[int, Series] = {}
        self.polls = 0

    # -- what the API reads ------------------------------------------------

    def copy_rates(self) -> dict[tuple[int, str], float]:
        """Requests per second of each copy placed now, where known."""
        rates = {}
        for shard in self._state.table.shards:
            for node in shard.copies:
                rate = self._rate(shard.shard_id, node)
                if rate is not None:
                    rates[(shard.shard_id, node)] = rate
        return rates

    def shard_rate(self, shard_id: int) -> float | None:
        """Requests per second over the shard's copies; None before two polls."""
        rates = [self._rate(shard_id, n) for n in self._state.table.shards[shard_id].copies]
        known = [r for r in rates if r is not None]
        return round(sum(known), 3) if known else None

    def node_rate(self, node_id: str) -> float | None:
        rates = [self._rate(s, node_id) for s in self._state.table.copies_on(node_id)]
        known = [r for r in rates if r is not None]
        return round(sum(known), 3) if known else (0.0 if not rates else None)

    def history(self) -> dict[str, Any]:
        """What the dashboard plots; points are ``[at, value...]`` with ``at`` in epoch s."""
        state = self._state
        return {
            "window_seconds": WINDOW,
            "max_points": MAX_POINTS,
            "nodes": [
                {
                    "id": record.id,
                    "rate": self.node_rate(record.id),
                    "fields": ["at", "rate", "latency_ms"],
                    "points": self._node_series.get(record.id, Series()).points(),
                }
                for record in state.registry.all()
            ],
            "shards": [
                {
                    "shard_id": shard.shard_id,
                    "rate": self.shard_rate(shard.shard_id),
                    "keys": self._sizes.get(shard.shard_id, (None, None))[0],
                    "bytes": self._sizes.get(shard.shard_id, (None, None))[1],
                    "fields": ["at", "rate", "bytes"],
                    "points": self._shard_series.get(shard.shard_id, Series()).points(),
                }
                for shard in state.table.shards
            ],
        }

    # -- feeding it ----------------------------------------------------------

    def on_probe(self, node_id: str, record: ProbeRecord) -> None:
        """The health monitor's hook: keep latencies of answered probes until the next point."""
        if record.ok:
            latencies = self._latencies.setdefault(node_id, [])
            if len(latencies) < MAX_POINTS:
                latencies.append(record.latency_ms)

    def _rate(self, shard_id: int, node_id: str) -> float | None:
        copy = self._copies.get((shard_id, node_id))
        return None if copy is None else copy.rate()

    def record(self, node_id: str, now: float, info: dict[str, Any]) -> None:
        """Take one node's ``/info`` answer read at monotonic time ``now``."""
        shards = info.get("shards")
        for item in shards if isinstance(shards, list) else []:
            fields = item if isinstance(item, dict) else {}
            shard_id = fields.get("shard_id")
            numbers = [fields.get(k, 0) for k in ("reads", "writes", "keys", "bytes")]
            if not all(type(n) is int for n in [shard_id, *numbers]):
                continue  # not what a node of this version sends: skip rather than fail
            reads, writes, keys, size = numbers
            assert isinstance(shard_id, int)
            if not 0 <= shard_id < self._state.table.num_shards:
                continue
            self._copies.setdefault((shard_id, node_id), CopyRate()).add(now, reads + writes)
            if self._state.table.shards[shard_id].primary == node_id:
                self._sizes[shard_id] = (keys, size)

    def add_points(self) -> None:
        """One point per node and per shard, stamped with the wall clock for the plots."""
        at, state = self._wall_clock(), self._state
        placed = {(s.shard_id, n) for s in state.table.shards for n in s.copies}
        for key in [k for k in self._copies if k not in placed]:
            del self._copies[key]  # a copy that left: its rate moved with it
        known = {r.id for r in state.registry.all()}
        for node_id in known:
            latency = mean(self._latencies.pop(node_id, []))
            self._node_series.setdefault(node_id, Series()).add(
                at, self.node_rate(node_id), latency
            )
        for gone in [n for n in self._node_series if n not in known]:
            del self._node_series[gone]
        self._latencies = {n: v for n, v in self._latencies.items() if n in known}
        for shard in state.table.shards:
            size = self._sizes.get(shard.shard_id, (None, None))[1]
            self._shard_series.setdefault(shard.shard_id, Series()).add(
                at, self.shard_rate(shard.shard_id), size
            )

    # -- the service -----------------------------------------------------------

    def period(self) -> float:
        return max(self._state.health.interval, MIN_POLL)

    async def poll(self) -> None:
        """Read every node that may serve, concurrently, then add one point."""
        state = self._state
        targets = [(r.id, r.addr) for r in state.registry.all() if state.is_up(r.id)]
        deadline = min(POLL_DEADLINE, self.period())
        await fan_out(lambda target: self._poll_node(*target, deadline), targets)
        self.add_points()
        self.polls += 1

    async def _poll_node(self, node_id: str, addr: str, deadline: float) -> None:
        try:
            reply = await self._nodes.request("GET", addr, "/info", deadline=deadline)
            info = json.loads(reply.body) if reply.status == 200 else None
        except (NodeUnreachable, ValueError) as exc:
            log.debug("load: %s did not report its counters: %s", node_id, exc)
            return
        if isinstance(info, dict):
            self.record(node_id, trio.current_time(), info)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll at a fixed rate until cancelled."""
        task_status.started()
        next_poll = trio.current_time()
        while True:
            await self.poll()
            next_poll = max(next_poll + self.period(), trio.current_time())
            await trio.sleep_until(next_poll)
