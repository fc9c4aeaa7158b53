"""Everything the coordinator knows, in one place the API and services share.

Trio runs one task at a time, so synchronous reads and mutations of this state
are atomic; only code that awaits between reading and writing must re-check.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from torua.cluster import NodeState, ShardTable, cluster_health
from torua.cluster.handover import authoritative
from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.registry import NodeRecord, Registry

__all__ = ["ClusterState"]


@dataclass(slots=True)
class ClusterState:
    settings: CoordinatorSettings
    health_status: dict[str, str] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    table: ShardTable = field(init=False)
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    # Write versions (torua.coordinator.versions): the largest issued or seen, the
    # ceiling asked to be saved, and the ceiling known to be saved.
    version_hwm: int = 0
    version_reserved: int = 0
    version_saved: int = 0
    epoch: int = 0  # the leadership term this state is led under (0: a single coordinator)
    # Copies replaced by a move but still authoritative until their successor is filled.
    retiring: dict[int, set[str]] = field(default_factory=dict)
    # Copies lost with a failed node (the only in-sync ones): reads that miss answer 503.
    lost: dict[int, set[str]] = field(default_factory=dict)
    # Per shard with lost copies: every version they may hold is below this, so a hit
    # at or above it is current and one below it may be stale (a 503).
    lost_floor: dict[int, int] = field(default_factory=dict)
    # Copies leaving the in-sync set whose departure is not saved yet: saved state
    # already excludes them, the live view drops them once the save is done.
    dropping: dict[int, set[str]] = field(default_factory=dict)
    # Keys whose last write failed on the copies but may have landed on some: their
    # copies may differ, so a read compares and repairs them before answering.
    unsettled: dict[int, set[str]] = field(default_factory=dict)
    health: HealthSettings = field(init=False)
    node_capacity: int | None = field(init=False)
    max_moves: int = field(init=False)

    def __post_init__(self) -> None:
        self.table = ShardTable(self.settings.shards, self.settings.replication_factor)
        self.health = self.settings.health
        self.node_capacity = self.settings.node_capacity
        self.max_moves = self.settings.max_moves

    def status_of(self, node_id: str) -> str:
        return self.health_status.get(node_id, "unknown")

    def capacity_of(self, record: NodeRecord) -> int | None:
        return record.capacity if record.capacity is not None else self.node_capacity

    def node_states(self) -> dict[str, NodeState]:
        """The placement view: only healthy, active nodes may take copies."""
        return {
            r.id: NodeState(
                id=r.id,
                live=self.status_of(r.id) == "healthy",
                leaving=r.mode != "active",
                capacity=self.capacity_of(r),
            )
            for r in self.registry.all()
        }

    def cluster_state(self) -> str:
        health = cluster_health(self.table, self.node_states())
        if health == "green" and (any(self.lost.values()) or self.syncing()):
            return "yellow"
        if health == "red" and all(self.readable_copies(s.shard_id) for s in self.table.shards):
            return "yellow"  # every shard still served by a copy that is moving away
        return health

    def is_up(self, node_id: str) -> bool:
        """May serve requests: registered and not known to be unhealthy."""
        return node_id in self.registry and self.status_of(node_id) != "unhealthy"

    def readable_copies(self, shard_id: int) -> list[str]:
        """Authoritative live copies, primary first, then retiring ones."""
        return authoritative(
            self.table.shards[shard_id], self.retiring.get(shard_id, set()), self.is_up
        )

    def syncing(self) -> list[tuple[int, str]]:
        """(shard, node) copies still being filled."""
        return [(s.shard_id, n) for s in self.table.shards for n in s.copies if n not in s.in_sync]

    def shard_state(self, shard_id: int) -> str:
        shard = self.table.shards[shard_id]
        if not self.readable_copies(shard_id):
            return "unassigned"
        if self.lost.get(shard_id):
            return "incomplete"
        if self.retiring.get(shard_id):
            return "relocating"
        if any(n not in shard.in_sync for n in shard.copies):
            return "recovering"
        return "active"

    def held_by_list(self, shard_id: int) -> set[str]:
        """Nodes that must keep serving a shard: its copies and retiring copies."""
        return set(self.table.shards[shard_id].copies) | self.retiring.get(shard_id, set())

    def held_by(self, node_id: str) -> list[int]:
        """Shards a node must serve: its copies plus copies it is handing over."""
        held = set(self.table.copies_on(node_id))
        held.update(s for s, nodes in self.retiring.items() if node_id in nodes)
        return sorted(held)

    def uptime(self) -> float:
        return time.time() - self.started_at
