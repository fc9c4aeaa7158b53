"""The coordinator's health monitor: one fixed-rate probe task per node.

Why one task per node: the Go original probed nodes in sequence, so every hung
node cost a full timeout per round and ten hung nodes of twenty took 53 s to
detect. Here each node has its own task on its own schedule
(``trio.sleep_until(next_tick)``) and each probe runs in its own
``trio.move_on_after(settings.timeout)``, so with interval I, timeout T and
threshold F a node hung from its first probe is ``unhealthy`` exactly
``(F - 1) * I + T`` after it is watched, however many other nodes are hung.

Hysteresis both ways: F consecutive failures make a node ``unhealthy``, S
consecutive passes make it ``healthy`` (from ``unknown`` too). Every change
publishes :class:`~torua.events.NodeHealthChanged` with its reason.

Stall rule (as in HashiCorp's Lifeguard): Python's event loop
can stall (GC, a CPU-bound handler, a paused VM), and a stalled prober must not
convict healthy nodes. Each probe task measures its own lag, and a *failed*
probe is recorded as inconclusive (``ok=False``, error ``"inconclusive: ..."``)
and counts neither way when either

* the task woke from its sleep more than ``STALL_FRACTION * timeout`` after the
  tick it slept until (the loop was busy elsewhere), or
* the probe timed out and its deadline fired more than
  ``STALL_FRACTION * timeout`` late (the loop, not the node, ran out of time).

The tolerance scales with the timeout because the timeout is the budget we
promised the node: losing half of it to our own lag leaves the verdict about
us, not the node. A *passing* probe always counts: the node demonstrably
answered, whatever our lag. When a stall leaves a schedule more than one
interval behind, the missed ticks are dropped (no burst of catch-up probes).

Large bursts of watches are spread: a node watched while ``SPREAD_AFTER`` or
more other first probes are still to come (a coordinator restart or a new
leader watching every saved node, many nodes registering at once) waits
:func:`first_probe_offset` (a fraction of the interval fixed by a hash of its
id) before its first probe. Otherwise their ticks would coincide forever and
every interval would start with one burst of probes: measured with 1,000
nodes, p99 schedule lag 154 ms aligned against 18 ms spread. The first
``SPREAD_AFTER`` of a burst, and so every node of a small cluster, are probed
at once as before: a few dozen probes together cost a few milliseconds, and a
new leader must learn quickly that nodes saved as unhealthy are back. So the
detection time above holds exactly for those; a spread node adds its offset
(less than one interval), which stays within the promised ``F * I + T``.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from torua.cluster.states import NodeStatus, ProbeResult
from torua.config import HealthSettings, format_duration
from torua.coordinator.nodes.probes import Probe
from torua.events import ClusterEvent, NodeHealthChanged
from torua.sim import seam
from torua.timestamps import rfc3339

__all__ = [
    "SPREAD_AFTER",
    "STALL_FRACTION",
    "HealthMonitor",
    "NodeHealth",
    "ProbeRecord",
    "first_probe_offset",
]

log = logging.getLogger(__name__)

SPREAD_AFTER = 32
"""First probes that may start together; later ones in the same burst are spread."""

STALL_FRACTION = 0.5
"""Loop lag, as a fraction of the probe timeout, beyond which a failure is inconclusive."""

UNKNOWN, HEALTHY, UNHEALTHY = NodeStatus.UNKNOWN, NodeStatus.HEALTHY, NodeStatus.UNHEALTHY


def first_probe_offset(node_id: str, interval: float) -> float:
    """Where in ``[0, interval)`` a spread node's schedule starts: stable per id, so a
    restarted coordinator lays out the same schedule, and uniform over many ids."""
    return zlib.crc32(node_id.encode("utf-8", "surrogatepass")) / 2**32 * interval


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """One probe's outcome, as ``GET /nodes/{id}/health`` shows it."""

    at: float  # wall-clock epoch seconds when the probe started
    ok: bool
    latency_ms: float
    error: str | None
    inconclusive: bool = False  # failed while the prober itself stalled: not counted

    @property
    def result(self) -> ProbeResult:
        if self.ok:
            return ProbeResult.OK
        return ProbeResult.INCONCLUSIVE if self.inconclusive else ProbeResult.FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "at": rfc3339(self.at),
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
        }


class NodeHealth:
    """One node's live health; the API reads it, only the node's probe task writes it."""

    __slots__ = (
        "_history",
        "consecutive_failures",
        "consecutive_successes",
        "last_check",
        "status",
    )

    def __init__(self, keep: int) -> None:
        self.status: NodeStatus = UNKNOWN
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.last_check: float | None = None
        # oldest first, so resizing with deque(old, maxlen=n) keeps the newest n
        self._history: deque[ProbeRecord] = deque(maxlen=keep)

    def history(self) -> list[ProbeRecord]:
        """Recent probes, newest first."""
        return list(reversed(self._history))

    def _record(self, record: ProbeRecord, keep: int, completed_at: float) -> None:
        if self._history.maxlen != keep:
            self._history = deque(self._history, maxlen=keep)
        self._history.append(record)
        self.last_check = completed_at

    def _count(
        self, record: ProbeRecord, settings: HealthSettings
    ) -> tuple[NodeStatus, str] | None:
        """Apply a conclusive result; return ``(new_status, reason)`` on a transition."""
        if record.ok:
            self.consecutive_failures = 0
            self.consecutive_successes += 1
            n = self.consecutive_successes
            if self.status != HEALTHY and n >= settings.successes:
                return HEALTHY, f"{n} consecutive {_plural(n, 'success', 'successes')}"
        else:
            self.consecutive_successes = 0
            self.consecutive_failures += 1
            n = self.consecutive_failures
            if self.status != UNHEALTHY and n >= settings.failures:
                reason = f"{n} consecutive {_plural(n, 'failure', 'failures')}: {record.error}"
                return UNHEALTHY, reason
        return None


class _Watched:
    """A watched node: its address, health, and the cancel scope of its probe task.

    The scope exists before the task starts, so ``unwatch`` can cancel a task
    that has been scheduled but has not run yet.
    """

    __slots__ = ("addr", "first_pending", "health", "node_id", "scope", "spawned", "spread")

    def __init__(self, node_id: str, addr: str, keep: int) -> None:
        self.node_id = node_id
        self.addr = addr
        self.health = NodeHealth(keep)
        self.scope = trio.CancelScope()
        self.spawned = False
        self.spread = False  # its first probe waits first_probe_offset()
        self.first_pending = True


class HealthMonitor:
    """Probes every watched node on its own schedule and publishes health changes.

    Use inside a caller's nursery: ``await nursery.start(monitor.run)``. ``watch``
    and ``unwatch`` are synchronous so HTTP handlers can call them directly.
    """

    def __init__(
        self,
        probe: Probe,
        events: trio.MemorySendChannel[ClusterEvent],
        settings: HealthSettings,
        *,
        wall_clock: Callable[[], float] | None = None,
        on_probe: Callable[[str, ProbeRecord], None] | None = None,
    ) -> None:
        self._probe = probe
        self._on_probe = on_probe  # sees every recorded probe (metrics)
        self._events = events
        self._settings = settings
        self._wall_clock = wall_clock or seam.current().time
        self._nodes: dict[str, _Watched] = {}
        self._nursery: trio.Nursery | None = None
        self._finished = False
        # set and replaced on every settings change, to wake sleeping probe tasks
        self._settings_changed = trio.Event()
        self._last_stall_warning = -math.inf
        self._first_pending = 0  # spawned nodes whose first probe has not started

    @property
    def settings(self) -> HealthSettings:
        """The settings in force; change them with :meth:`update_settings`."""
        return self._settings

    def update_settings(self, settings: HealthSettings) -> None:
        """Apply new settings from each node's next probe, without restarting tasks.

        Sleeping tasks are woken so a new interval reschedules them at once (from
        their last probe), rather than after one more tick of the old interval.
        """
        self._settings = settings
        changed, self._settings_changed = self._settings_changed, trio.Event()
        changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe until cancelled; closes the events channel on the way out."""
        if self._nursery is not None or self._finished:
            raise RuntimeError("HealthMonitor.run() can only run once")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for node in self._nodes.values():
                    self._spawn(node)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._finished = True
            self._events.close()

    def watch(self, node_id: str, addr: str) -> None:
        """Start probing a node now; for a watched id, just take the new address."""
        node = self._nodes.get(node_id)
        if node is not None:
            if node.addr != addr:
                log.info("health: node %s address %s -> %s", node_id, node.addr, addr)
                node.addr = addr
            return
        node = _Watched(node_id, addr, self._settings.history)
        self._nodes[node_id] = node
        if self._nursery is not None:
            self._spawn(node)

    def unwatch(self, node_id: str) -> None:
        """Stop probing a node and forget it; no probe of it starts after this returns."""
        node = self._nodes.pop(node_id, None)
        if node is not None:
            node.scope.cancel()
            self._first_done(node)

    def health(self, node_id: str) -> NodeHealth:
        """The node's live health; ``KeyError`` if it is not watched."""
        return self._nodes[node_id].health

    def watched(self) -> list[str]:
        return list(self._nodes)

    # -- the per-node task -------------------------------------------------

    def _spawn(self, node: _Watched) -> None:
        if not node.spawned:
            node.spawned = True
            node.spread = self._first_pending >= SPREAD_AFTER  # part of a large burst
            self._first_pending += 1
            assert self._nursery is not None
            self._nursery.start_soon(self._probe_loop, node, name=f"health-probe:{node.node_id}")

    def _first_done(self, node: _Watched) -> None:
        if node.spawned and node.first_pending:
            node.first_pending = False
            self._first_pending -= 1

    async def _probe_loop(self, node: _Watched) -> None:
        with node.scope:
            tick = trio.current_time()
            if node.spread:
                await trio.sleep_until(
                    tick + first_probe_offset(node.node_id, self._settings.interval)
                )
                tick = trio.current_time()  # the schedule starts at the first probe, as unspread
            self._first_done(node)
            lag = 0.0
            while True:
                # nothing else checkpoints before the probe is called on the first
                # round (spawned, then unwatched before it ran) or after a wake-up
                # by a settings change: this keeps "no probe after unwatch()" true
                await trio.lowlevel.checkpoint_if_cancelled()
                await self._probe_once(node, lag)
                tick, lag = await self._sleep_until_next(tick)

    async def _sleep_until_next(self, last_tick: float) -> tuple[float, float]:
        """Sleep to the next tick after ``last_tick``; return ``(tick, stall_lag)``.

        ``stall_lag`` is how late the loop woke us, counted only when we really
        slept (a tick already past when we got here is our own slowness, not a
        loop stall). A settings change wakes us to recompute with the new interval.
        """
        while True:
            interval = self._settings.interval
            tick = last_tick + interval
            changed = self._settings_changed
            slept = trio.current_time() < tick
            with trio.move_on_at(tick):
                await changed.wait()
            if changed.is_set():
                continue
            now = trio.current_time()
            lag = now - tick if slept else 0.0
            if now - tick > interval:
                log.debug("health: schedule %.3fs behind, skipping missed ticks", now - tick)
                tick = now
            return tick, lag

    async def _probe_once(self, node: _Watched, wake_lag: float) -> None:
        settings = self._settings
        tolerance = STALL_FRACTION * settings.timeout
        at = self._wall_clock()
        started = trio.current_time()
        error: str | None = "probe did not run"
        with trio.move_on_after(settings.timeout) as scope:
            error = await self._call_probe(node, settings)
        elapsed = trio.current_time() - started
        if node.scope.cancel_called:  # unwatched while probing: record nothing
            return
        if scope.cancelled_caught:
            error = f"timeout after {format_duration(settings.timeout)}"
        stall: str | None = None
        if error is not None:
            if wake_lag > tolerance:
                stall = f"probe task woke {wake_lag:.2f}s late"
            elif scope.cancelled_caught and elapsed - settings.timeout > tolerance:
                stall = f"timeout fired {elapsed - settings.timeout:.2f}s late"
        if stall is not None:
            error = f"inconclusive: {stall} ({error})"
            self._warn_stall(node.node_id, stall, settings)
        record = ProbeRecord(
            at=at,
            ok=error is None,
            latency_ms=elapsed * 1000.0,
            error=error,
            inconclusive=stall is not None,
        )
        health = node.health
        health._record(record, settings.history, self._wall_clock())
        if self._on_probe is not None:
            self._on_probe(node.node_id, record)
        if stall is not None:
            return
        change = health._count(record, settings)
        if change is not None:
            await self._publish(node.node_id, health, *change)

    async def _call_probe(self, node: _Watched, settings: HealthSettings) -> str | None:
        """Run the probe; a probe that raises (a bug) counts as a failure, not a crash.

        One broken probe must not take down the coordinator's nursery with it.
        """
        try:
            return await self._probe(node.addr, settings)
        except Exception as exc:
            log.exception("health: probe of %s (%s) raised", node.node_id, node.addr)
            return f"probe error: {type(exc).__name__}: {exc}"[:200]

    async def _publish(
        self, node_id: str, health: NodeHealth, new: NodeStatus, reason: str
    ) -> None:
        old, health.status = health.status, new
        if new == UNHEALTHY:
            log.warning("health: node %s %s -> %s (%s)", node_id, old, new, reason)
        else:
            log.info("health: node %s %s -> %s (%s)", node_id, old, new, reason)
        await self._events.send(NodeHealthChanged(node_id=node_id, old=old, new=new, reason=reason))

    def _warn_stall(self, node_id: str, stall: str, settings: HealthSettings) -> None:
        """One warning per interval, not one per node, when the loop stalls."""
        now = trio.current_time()
        if now - self._last_stall_warning >= settings.interval:
            self._last_stall_warning = now
            log.warning(
                "health: event loop stalled (%s probing %s); failed probes are inconclusive",
                stall,
                node_id,
            )
        else:
            log.debug("health: inconclusive probe of %s: %s", node_id, stall)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many
