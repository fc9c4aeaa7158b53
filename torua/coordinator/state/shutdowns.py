"""Nodes expected back: planned restarts and failures within the replica delay.

A node that is *away* keeps its copies in the shard table (placement sees it as
``held``): they are not rebuilt elsewhere, writes go on to the other copies,
and each away copy leaves the in-sync set when it misses its first write, with
the version it missed recorded so that it later catches up by delta. Past the
node's deadline the hold ends and the usual rebuild starts.

Two ways in:

* a **planned restart**: an operator asked for ``PUT /nodes/{id}/shutdown``
  with ``type: restart``; the node is away from the moment it says it stops
  (its own drain call on SIGTERM) or is found unhealthy, whichever comes first;
* an **unplanned failure**: the node turned unhealthy while ``replica_delay``
  is above zero.

Only clusters keeping two or more copies hold anything: with one copy, a held
shard would be unreadable and unwritable for the whole delay.

Deadlines are kept twice: as wall-clock time (saved, so a restarted
coordinator keeps honouring them) and on the monotonic clock (not saved). A
hold ends when *either* says so, and a restarted coordinator re-arms the
monotonic deadline at most the original delay away, so a wall clock that steps
can only end a hold early (an early rebuild costs copying, never data).

Pure: no trio, no I/O; the clocks are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torua.sim import seam

__all__ = ["Away", "Kind", "Shutdown", "Shutdowns"]

Kind = Literal["restart", "remove"]
Clock = Callable[[], float]


@dataclass(slots=True)
class Shutdown:
    """An operator's notice that a node will go: to come back, or for good."""

    node_id: str
    kind: Kind
    allocation_delay: float
    created_at: float  # wall clock
    left_at: float | None = None  # when it went away (wall clock)
    returned_at: float | None = None  # when it registered again after leaving


@dataclass(slots=True)
class Away:
    """A node whose copies wait for it until ``deadline``."""

    node_id: str
    reason: Literal["restart", "unhealthy"]
    delay: float
    deadline: float  # wall clock: saved
    mono_deadline: float  # monotonic clock: this process only
    back: bool = False  # registered again; the hold lasts until it is healthy


class Shutdowns:
    def __init__(self, *, wall: Clock = seam.wall_time, mono: Clock = seam.monotonic) -> None:
        self.wall, self.mono = wall, mono
        self.records: dict[str, Shutdown] = {}
        self.away: dict[str, Away] = {}
        self.on_change: Callable[[], None] = lambda: None  # wakes the delay timer

    # ---- queries ---------------------------------------------------------------

    def holds(self, node_id: str) -> bool:
        """Its copies stay placed while it is down (its deadline has not passed)."""
        away = self.away.get(node_id)
        return away is not None and not self._passed(away)

    def gone(self, node_id: str) -> bool:
        """Away and not registered again: it serves nothing, whatever its probes said."""
        away = self.away.get(node_id)
        return away is not None and not away.back

    def next_wait(self) -> float | None:
        """Seconds until the earliest deadline (None: nothing is held)."""
        if not self.away:
            return None
        wall, mono = self.wall(), self.mono()
        return max(
            0.0, min(min(a.deadline - wall, a.mono_deadline - mono) for a in self.away.values())
        )

    def _passed(self, away: Away) -> bool:
        return self.wall() >= away.deadline or self.mono() >= away.mono_deadline

    # ---- events ------------------------------------------------------------------

    def request(self, node_id: str, kind: Kind, allocation_delay: float) -> Shutdown:
        """A new notice replaces an older one for the same node."""
        record = Shutdown(node_id, kind, allocation_delay, created_at=self.wall())
        self.records[node_id] = record
        self.on_change()
        return record

    def cancel(self, node_id: str) -> bool:
        """The notice is withdrawn; a hold it started ends (the node, if still
        down, is then a failure like any other)."""
        record = self.records.pop(node_id, None)
        away = self.away.get(node_id)
        if away is not None and away.reason == "restart":
            del self.away[node_id]
        self.on_change()
        return record is not None

    def left(self, node_id: str, *, replica_delay: float, copies: int) -> bool:
        """The node went away (it said it stops, or it turned unhealthy): hold its
        copies for its restart's delay, else the replica delay. True when a hold
        started. A hold already running keeps its deadline."""
        record = self.records.get(node_id)
        fresh = record is not None and (record.left_at is None or record.returned_at is not None)
        if record is not None and record.kind == "restart" and fresh:
            record.left_at = self.wall()
            record.returned_at = None
        if node_id in self.away or copies < 2:
            return False
        if record is not None and record.kind == "restart":
            reason: Literal["restart", "unhealthy"] = "restart"
            delay = record.allocation_delay
        else:
            reason, delay = "unhealthy", replica_delay
        if delay <= 0:
            return False
        self.away[node_id] = Away(
            node_id,
            reason,
            delay,
            deadline=self.wall() + delay,
            mono_deadline=self.mono() + delay,
        )
        self.on_change()
        return True

    def registered(self, node_id: str, *, healthy: bool) -> bool:
        """The node registered again: it may serve once healthy. True when that
        changed anything here."""
        record = self.records.get(node_id)
        changed = False
        if record is not None and record.left_at is not None and record.returned_at is None:
            record.returned_at = self.wall()
            changed = True
        away = self.away.get(node_id)
        if away is not None:
            away.back = changed = True
            if healthy:
                self.healthy(node_id)
        return changed

    def healthy(self, node_id: str) -> bool:
        """Probes pass again: the hold ends (its copies catch up). True if one did."""
        record = self.records.get(node_id)
        if record is not None and record.left_at is not None and record.returned_at is None:
            record.returned_at = self.wall()
        if self.away.pop(node_id, None) is None:
            return False
        self.on_change()
        return True

    def expire(self) -> list[str]:
        """End the holds whose deadline passed; returns their nodes."""
        done = [n for n, a in self.away.items() if self._passed(a)]
        for node_id in done:
            del self.away[node_id]
        return done

    def forget(self, node_id: str) -> None:
        """The node was removed."""
        self.records.pop(node_id, None)
        self.away.pop(node_id, None)
        self.on_change()

    # ---- views and the saved form ---------------------------------------------------

    def status(self, node_id: str) -> str:
        """``waiting`` (not gone yet), ``away`` (copies held), ``returning``
        (registered, not yet healthy), ``expired`` (gone past its delay: its copies
        were rebuilt), ``complete`` (back and healthy)."""
        record = self.records[node_id]
        away = self.away.get(node_id)
        if record.left_at is None:
            return "waiting"
        if away is not None:
            return "returning" if away.back else "away"
        if record.returned_at is None:
            return "expired"
        return "complete"

    def to_json(self) -> dict[str, Any]:
        return {
            "records": [
                {
                    "node_id": r.node_id,
                    "kind": r.kind,
                    "allocation_delay": r.allocation_delay,
                    "created_at": r.created_at,
                    "left_at": r.left_at,
                    "returned_at": r.returned_at,
                }
                for r in self.records.values()
            ],
            "away": [
                {"node_id": a.node_id, "reason": a.reason, "delay": a.delay, "deadline": a.deadline}
                for a in self.away.values()
            ],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put saved notices and holds back. A hold's monotonic deadline is re-armed
        from the saved wall-clock deadline, never further than its whole delay: a
        wall clock set back while the coordinator was down cannot stretch it."""
        self.records = {
            r["node_id"]: Shutdown(
                r["node_id"],
                r["kind"],
                float(r["allocation_delay"]),
                float(r["created_at"]),
                r.get("left_at"),
                r.get("returned_at"),
            )
            for r in data.get("records", [])
        }
        wall, mono = self.wall(), self.mono()
        self.away = {}
        for a in data.get("away", []):
            delay = float(a["delay"])
            left = min(delay, max(0.0, float(a["deadline"]) - wall))
            self.away[a["node_id"]] = Away(
                a["node_id"], a["reason"], delay, float(a["deadline"]), mono + left
            )
        self.on_change()
