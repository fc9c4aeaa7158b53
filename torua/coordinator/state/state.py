"""Everything the coordinator knows, in one place the API and services share.

Trio runs one task at a time, so synchronous reads and mutations of this state
are atomic; only code that awaits between reading and writing must re-check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from torua.cluster import NodeState, ShardTable, cluster_health
from torua.cluster.copies import Copies
from torua.cluster.states import ClusterHealth, NodeMode, NodeStatus, ShardState
from torua.cluster.suspects import Suspects
from torua.cluster.tombstone_gc import InSyncTimes
from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.state.node_checks import NodeChecks
from torua.coordinator.state.registry import NodeRecord, Registry
from torua.coordinator.state.shutdowns import Shutdowns
from torua.sim import seam

__all__ = ["ClusterState"]


@dataclass(slots=True)
class ClusterState:
    settings: CoordinatorSettings
    health_status: dict[str, str] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    # Every shard's copies and their lifecycle (torua.cluster.copies): only its event
    # methods change them; the properties below are for reading.
    copies: Copies = field(init=False)
    cluster_id: str = field(default_factory=lambda: seam.current().unique_hex())
    started_at: float = field(default_factory=lambda: seam.current().time())
    # Write versions (torua.coordinator.data.versions): the largest issued or seen, the
    # ceiling asked to be saved, and the ceiling known to be saved.
    version_hwm: int = 0
    version_reserved: int = 0
    version_saved: int = 0
    # Writes in flight, by the version counter when each began (each version it
    # uses is above that): the settled watermark is the smallest (suspects.py).
    write_starts: Counter[int] = field(default_factory=Counter)
    # Shards whose copies may differ above a version, since a restart (suspects.py).
    suspects: Suspects = field(default_factory=Suspects)
    # Set once this coordinator's server has stopped for good: no write can start
    # any more, so a snapshot with none in flight says so and the next start
    # doubts nothing (persistence.py).
    writes_closed: bool = False
    epoch: int = 0  # the leadership term this state is led under (0: a single coordinator)
    health: HealthSettings = field(init=False)
    node_capacity: int | None = field(init=False)
    max_moves: int = field(init=False)
    tombstone_grace: float = field(init=False)  # seconds; live through /cluster/config
    # The self-checks of each node's latest health answer (the probe keeps them).
    checks: NodeChecks = field(default_factory=NodeChecks)
    # When each copy was last seen in sync: a copy away longer than the tombstone
    # grace is filled from scratch (torua.cluster.tombstone_gc).
    in_sync_times: InSyncTimes = field(default_factory=InSyncTimes)
    replica_delay: float = field(init=False)
    # Nodes expected back (planned restarts, failures within the replica delay).
    shutdowns: Shutdowns = field(default_factory=Shutdowns)

    def __post_init__(self) -> None:
        self.copies = Copies(ShardTable(self.settings.shards, self.settings.replication_factor))
        self.health = self.settings.health
        self.node_capacity = self.settings.node_capacity
        self.max_moves = self.settings.max_moves
        self.tombstone_grace = self.settings.tombstone_grace
        self.replica_delay = self.settings.replica_delay

    @property
    def table(self) -> ShardTable:
        return self.copies.table

    @property
    def retiring(self) -> dict[int, set[str]]:
        """Copies replaced by a move, authoritative until their successors are whole."""
        return self.copies.retiring

    @property
    def lost(self) -> dict[int, set[str]]:
        """Copies lost with failed nodes: reads that miss answer 503 meanwhile."""
        return self.copies.lost

    @property
    def lost_floor(self) -> dict[int, int]:
        return self.copies.lost_floor

    @property
    def dropping(self) -> dict[int, set[str]]:
        return self.copies.dropping

    @property
    def unsettled(self) -> dict[int, set[str]]:
        return self.copies.unsettled

    def settled_watermark(self) -> int:
        """Every write with a version at or below this has its outcome recorded here
        (acknowledged, or its key unsettled): a snapshot taken now may vouch for it."""
        starts = self.write_starts
        return min(starts) if starts else self.version_hwm

    def status_of(self, node_id: str) -> str:
        return self.health_status.get(node_id, NodeStatus.UNKNOWN)

    def capacity_of(self, record: NodeRecord) -> int | None:
        return record.capacity if record.capacity is not None else self.node_capacity

    def node_states(self) -> dict[str, NodeState]:
        """The placement view: only healthy, active nodes may take copies; an active
        node that is away within its delay keeps its copies (``held``)."""
        states = {}
        for r in self.registry.all():
            live = self.status_of(r.id) == NodeStatus.HEALTHY and not self.shutdowns.gone(r.id)
            states[r.id] = NodeState(
                id=r.id,
                live=live,
                leaving=r.mode != NodeMode.ACTIVE,
                capacity=self._room_for(r),
                held=not live and r.mode == NodeMode.ACTIVE and self.shutdowns.holds(r.id),
            )
        return states

    def _room_for(self, record: NodeRecord) -> int | None:
        """A node whose disk check warns keeps what it holds and takes nothing new:
        capped at its present load, placement neither adds to it nor sheds from it."""
        capacity = self.capacity_of(record)
        if not self.checks.disk_warns(record.addr):
            return capacity
        held = self.table.load(record.id)
        return held if capacity is None else min(capacity, held)

    def cluster_state(self) -> ClusterHealth:
        health = cluster_health(self.table, self.node_states())
        if health == ClusterHealth.GREEN and (any(self.lost.values()) or self.syncing()):
            return ClusterHealth.YELLOW
        if health == ClusterHealth.RED and all(
            self.readable_copies(s.shard_id) for s in self.table.shards
        ):
            return ClusterHealth.YELLOW  # every shard still served by a copy that is moving away
        return health

    def is_up(self, node_id: str) -> bool:
        """May serve requests: registered, not known to be unhealthy, and not gone
        for a restart it has not registered back from."""
        return (
            node_id in self.registry
            and self.status_of(node_id) != NodeStatus.UNHEALTHY
            and not self.shutdowns.gone(node_id)
        )

    def readable_copies(self, shard_id: int) -> list[str]:
        """Authoritative live copies, primary first, then retiring ones."""
        return self.copies.authoritative(shard_id, self.is_up)

    def syncing(self) -> list[tuple[int, str]]:
        """(shard, node) copies still being filled."""
        return self.copies.syncing()

    def shard_state(self, shard_id: int) -> ShardState:
        return self.copies.shard_state(shard_id, self.is_up)

    def held_by_list(self, shard_id: int) -> set[str]:
        """Nodes that must keep serving a shard: its copies and retiring copies."""
        return self.copies.holders(shard_id)

    def held_by(self, node_id: str) -> list[int]:
        """Shards a node must serve: its copies plus copies it is handing over."""
        return self.copies.held_by(node_id)

    def uptime(self) -> float:
        return seam.current().time() - self.started_at
