"""Everything the coordinator knows, in one place the API and services share.

Trio runs one task at a time, so synchronous reads and mutations of this state
are atomic; only code that awaits between reading and writing must re-check.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from torua.cluster import NodeState, ShardTable, cluster_health
from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.registry import NodeRecord, Registry
from torua.node.store import next_version

__all__ = ["ClusterState"]


@dataclass(slots=True)
class ClusterState:
    settings: CoordinatorSettings
    health_status: dict[str, str] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    table: ShardTable = field(init=False)
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    version_hwm: int = 0
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
        return cluster_health(self.table, self.node_states())

    def next_version(self) -> int:
        self.version_hwm = next_version(self.version_hwm)
        return self.version_hwm

    def uptime(self) -> float:
        return time.time() - self.started_at
