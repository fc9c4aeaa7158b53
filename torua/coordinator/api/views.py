"""JSON views of coordinator state, shared by the API, the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from torua import __version__
from torua.cluster import Shard
from torua.cluster.states import ClusterHealth, NodeStatus
from torua.coordinator.control.health import NodeHealth
from torua.coordinator.state.registry import NodeRecord
from torua.coordinator.state.state import ClusterState
from torua.timestamps import rfc3339

__all__ = ["cluster_info", "node_info", "node_view", "shards_view"]


class HealthLookup(Protocol):
    """The live monitor on a leader; the saved statuses on a follower."""

    def health(self, node_id: str) -> NodeHealth: ...


def _health(monitor: HealthLookup, node_id: str) -> tuple[str, int, float | None]:
    try:
        health = monitor.health(node_id)
    except KeyError:
        return NodeStatus.UNKNOWN, 0, None
    return health.status, health.consecutive_failures, health.last_check


def node_view(state: ClusterState, monitor: HealthLookup, record: NodeRecord) -> dict[str, Any]:
    status, failures, last_check = _health(monitor, record.id)
    return {
        "id": record.id,
        "addr": record.addr,
        "status": status,
        "mode": record.mode,
        "last_health_check": rfc3339(last_check),
        "consecutive_failures": failures,
        "shards": state.table.copies_on(record.id),
        "primary_shards": state.table.primaries_on(record.id),
        "capacity": state.capacity_of(record),
        "checks": state.checks.of(record.addr),
        # A planned restart's progress, or "away" for a failure within the delay.
        "shutdown": _shutdown_status(state, record.id),
    }


def _shutdown_status(state: ClusterState, node_id: str) -> str | None:
    if node_id in state.shutdowns.records:
        return state.shutdowns.status(node_id)
    return "away" if node_id in state.shutdowns.away else None


def shard_health(state: ClusterState, shard: Shard) -> tuple[ClusterHealth, str | None]:
    """``green``, ``yellow`` or ``red`` for one shard, with the reason when not green."""
    readable = [n for n in shard.copies if n in shard.in_sync and state.is_up(n)]
    readable = [n for n in readable if state.status_of(n) == NodeStatus.HEALTHY]
    if not readable:
        return ClusterHealth.RED, "no in-sync copy on a healthy node"
    if len(readable) >= state.table.replication_factor:
        return ClusterHealth.GREEN, None
    reasons = []
    for node_id in shard.copies:
        if node_id in readable:
            continue
        away = state.shutdowns.away.get(node_id)
        if away is not None:
            why = "restarting" if away.reason == "restart" else "unhealthy"
            reasons.append(
                f"copy on {node_id} is away ({why}); rebuilt elsewhere if not back by "
                f"{rfc3339(away.deadline)}"
            )
        elif state.is_up(node_id):
            reasons.append(f"copy on {node_id} is catching up")
        else:
            reasons.append(f"copy on {node_id} is down")
    if len(shard.copies) < state.table.replication_factor:
        reasons.append(f"{len(shard.copies)} of {state.table.replication_factor} copies placed")
    return ClusterHealth.YELLOW, "; ".join(reasons)


def node_info(state: ClusterState, monitor: HealthLookup, record: NodeRecord) -> dict[str, Any]:
    status, _, last_check = _health(monitor, record.id)
    capacity = state.capacity_of(record)
    held = state.table.load(record.id)
    return {
        "node_id": record.id,
        "address": record.addr,
        "status": status,
        "mode": record.mode,
        "shard_count": held,
        "last_heartbeat": rfc3339(last_check),
        "uptime": round(max(0.0, (last_check or record.registered_at) - record.registered_at), 3),
        "available_capacity": None if capacity is None else max(0, capacity - held),
        "version": __version__,
    }


def shards_view(
    state: ClusterState, rate: Callable[[int], float | None] | None = None
) -> dict[str, Any]:
    """``rate``: a shard's requests per second over its copies (None: not measured)."""
    table = state.table
    return {
        "num_shards": table.num_shards,
        "replication_factor": table.replication_factor,
        "shards": [
            {
                "shard_id": shard.shard_id,
                "primary": shard.primary,
                "replicas": shard.replicas,
                "in_sync": [n for n in shard.copies if n in shard.in_sync],
                "state": state.shard_state(shard.shard_id),
                "rate": None if rate is None else rate(shard.shard_id),
                "health": (health := shard_health(state, shard))[0],
                "reason": health[1],
            }
            for shard in table.shards
        ],
    }


def cluster_info(state: ClusterState, monitor: HealthLookup) -> dict[str, Any]:
    records = state.registry.all()
    healthy = sum(1 for r in records if _health(monitor, r.id)[0] == NodeStatus.HEALTHY)
    return {
        "cluster_id": state.cluster_id,
        "coordinator_version": __version__,
        "total_nodes": len(records),
        "healthy_nodes": healthy,
        "total_shards": state.table.num_shards,
        "assigned_shards": sum(1 for s in state.table.shards if s.copies),
        "replication_factor": state.table.replication_factor,
        "cluster_state": state.cluster_state(),
        "uptime": round(state.uptime(), 3),
    }
