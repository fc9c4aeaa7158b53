"""The coordinator's metrics: cluster gauges computed at scrape time, probe counters.

Why a custom collector for the cluster gauges: nodes by status, copies per
node and shard states are already in the live state (registry, shard table,
health monitor); reading them when Prometheus scrapes means no second copy to
keep in sync and no gauge left behind when a node is removed.

Probe results cannot be derived that way (the monitor keeps only the recent
history, so re-reading it would double count), so :func:`probe_observer`
builds counters that the health monitor updates through its ``on_probe``
callback, once per recorded probe.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from quart import Quart

from torua.cluster.states import ClusterHealth, NodeMode, NodeStatus, ProbeResult, ShardState
from torua.coordinator.control.health import HealthMonitor, ProbeRecord
from torua.coordinator.control.mover import Mover
from torua.coordinator.state.state import ClusterState
from torua.http.metrics import install_metrics

__all__ = [
    "PROBE_BUCKETS",
    "CoordinatorCollector",
    "install_coordinator_metrics",
    "probe_observer",
]

NODE_STATUSES = tuple(NodeStatus)
NODE_MODES = tuple(NodeMode)
SHARD_STATES = tuple(ShardState)
CLUSTER_STATES = tuple(ClusterHealth)
PROBE_RESULTS = tuple(ProbeResult)

PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds; a probe never outlasts its timeout (default 2 s)."""


class CoordinatorCollector:
    """Cluster gauges read from the live state on every scrape.

    Every status, mode, shard state and cluster state is reported, zeros
    included, so a query such as ``torua_nodes{status="unhealthy"} > 0`` has
    a series to compare even while the answer is no.
    """

    def __init__(self, state: ClusterState, monitor: HealthMonitor, mover: Mover) -> None:
        self._state = state
        self._monitor = monitor
        self._mover = mover

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry refuse a duplicate name."""
        return iter(_families())

    def collect(self) -> Iterator[Metric]:
        nodes, modes, copies, primaries, shards, cluster, moves = _families()
        state = self._state
        records = state.registry.all()

        statuses = Tally(self._status(r.id) for r in records)
        for status in NODE_STATUSES:
            nodes.add_metric([status], statuses[status])
        by_mode: Tally[str] = Tally(r.mode for r in records)
        for mode in NODE_MODES:
            modes.add_metric([mode], by_mode[mode])

        held = {r.id: 0 for r in records}
        led = dict(held)
        for shard in state.table.shards:
            for node_id in shard.copies:
                held[node_id] = held.get(node_id, 0) + 1
            if shard.primary is not None:
                led[shard.primary] = led.get(shard.primary, 0) + 1
        for node_id in sorted(held):
            copies.add_metric([node_id], held[node_id])
            primaries.add_metric([node_id], led.get(node_id, 0))

        by_state = Tally(state.shard_state(s.shard_id) for s in state.table.shards)
        for shard_state in SHARD_STATES:
            shards.add_metric([shard_state], by_state[shard_state])
        current = state.cluster_state()
        for name in CLUSTER_STATES:
            cluster.add_metric([name], 1 if name == current else 0)
        moves.add_metric([], self._mover.busy())
        filled = CounterMetricFamily(
            "torua_fill_bytes",
            "Bytes of records copied into copies being filled, by kind (full or delta)",
            labels=["kind"],
        )
        for kind, count in sorted(self._mover.fill_bytes.items()):
            filled.add_metric([kind], count)
        yield from (nodes, modes, copies, primaries, shards, cluster, moves, filled)

    def _status(self, node_id: str) -> str:
        # the monitor, as GET /nodes shows it; a node not watched yet is unknown
        try:
            return self._monitor.health(node_id).status
        except KeyError:
            return "unknown"


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily("torua_nodes", "Registered nodes by health status", labels=["status"]),
        GaugeMetricFamily("torua_nodes_by_mode", "Registered nodes by mode", labels=["mode"]),
        GaugeMetricFamily("torua_node_copies", "Shard copies placed on each node", labels=["node"]),
        GaugeMetricFamily(
            "torua_node_primaries", "Primary shard copies on each node", labels=["node"]
        ),
        GaugeMetricFamily("torua_shards", "Shards by state (GET /shards)", labels=["state"]),
        GaugeMetricFamily(
            "torua_cluster_state", "1 for the current cluster state, else 0", labels=["state"]
        ),
        GaugeMetricFamily("torua_moves_running", "Shard copies being filled or merged now"),
    )


def probe_observer(registry: CollectorRegistry) -> Callable[[str, ProbeRecord], None]:
    """The health monitor's ``on_probe``: count each probe and time it, by result.

    Latency is labelled by result too, because a failed probe's latency is
    mostly the timeout and would drown the latency of the nodes that answer.
    """
    results = Counter(
        "torua_probes",
        "Health probes by result (inconclusive: the prober itself stalled)",
        ["result"],
        registry=registry,
    )
    latency = Histogram(
        "torua_probe_latency_seconds",
        "Health probe latency by result",
        ["result"],
        buckets=PROBE_BUCKETS,
        registry=registry,
    )
    counted = {result: results.labels(result) for result in PROBE_RESULTS}
    timed = {result: latency.labels(result) for result in PROBE_RESULTS}

    def on_probe(node_id: str, record: ProbeRecord) -> None:
        result = record.result
        counted[result].inc()
        timed[result].observe(record.latency_ms / 1000.0)

    return on_probe


def install_coordinator_metrics(
    app: Quart,
    state: ClusterState,
    monitor: HealthMonitor,
    mover: Mover,
    registry: CollectorRegistry | None = None,
) -> CollectorRegistry:
    """``GET /metrics`` on the coordinator app, into ``registry`` (the probe observer's)."""
    return install_metrics(app, CoordinatorCollector(state, monitor, mover), registry=registry)
