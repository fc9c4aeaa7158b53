"""A node's metrics: the copies it holds, their size, its lease, read at scrape time.

Why at scrape time: the store already keeps per-shard counts (the SQLite
store in a ``shard_stats`` table, so ``stats()`` is one indexed row), and the
held set and lease live in :class:`~torua.node.state.NodeRuntime`. A shard
given away simply stops being reported; nothing has to be reset.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from quart import Quart

from torua import __version__
from torua.http.metrics import install_metrics
from torua.node.state import NodeRuntime
from torua.node.store import Store

__all__ = ["NodeCollector", "install_node_metrics"]


class NodeCollector:
    """Gauges over the node's runtime and store, computed on every scrape."""

    def __init__(self, runtime: NodeRuntime, store: Store) -> None:
        self._runtime = runtime
        self._store = store

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry refuse a duplicate name."""
        yield from _families()
        yield from _load_families(NodeRuntime(node_id="-"))

    def collect(self) -> Iterator[Metric]:
        info, held, keys, size, lease, epoch = _families()
        runtime = self._runtime
        info.add_metric([runtime.node_id, __version__], 1)
        shards = sorted(runtime.held)
        held.add_metric([], len(shards))
        for shard_id in shards:
            stats = self._store.stats(shard_id)
            keys.add_metric([str(shard_id)], stats.keys)
            size.add_metric([str(shard_id)], stats.bytes)
        lease.add_metric([], 1 if runtime.lease_valid() else 0)
        epoch.add_metric([], runtime.epoch)
        yield from (info, held, keys, size, lease, epoch)
        yield from _load_families(runtime)


def _load_families(runtime: NodeRuntime) -> tuple[CounterMetricFamily, ...]:
    """Requests and value bytes per shard (torua.node.load), also for shards given away:
    a counter that vanished and came back would look like a reset."""
    requests = CounterMetricFamily(
        "torua_node_shard_requests", "Store reads and writes per shard", labels=["shard", "op"]
    )
    moved = CounterMetricFamily(
        "torua_node_shard_value_bytes",
        "Value bytes read and written per shard",
        labels=["shard", "direction"],
    )
    for shard_id in runtime.load.shards():
        counts, shard = runtime.load.counts(shard_id), str(shard_id)
        requests.add_metric([shard, "read"], counts.reads)
        requests.add_metric([shard, "write"], counts.writes)
        moved.add_metric([shard, "read"], counts.bytes_read)
        moved.add_metric([shard, "written"], counts.bytes_written)
    return requests, moved


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "torua_node_info", "This node's id and version", labels=["node", "version"]
        ),
        GaugeMetricFamily("torua_node_shards_held", "Shard copies this node serves"),
        GaugeMetricFamily("torua_node_keys", "Live keys per held shard", labels=["shard"]),
        GaugeMetricFamily("torua_node_bytes", "Value bytes per held shard", labels=["shard"]),
        GaugeMetricFamily(
            "torua_node_lease_valid", "1 while the coordinator's lease lets this node take writes"
        ),
        GaugeMetricFamily(
            "torua_node_leader_epoch",
            "Newest coordinator leader epoch seen; older ones are fenced (0: one coordinator)",
        ),
    )


def install_node_metrics(app: Quart, runtime: NodeRuntime, store: Store) -> CollectorRegistry:
    """``GET /metrics`` on the node app, with a registry of its own."""
    return install_metrics(app, NodeCollector(runtime, store))
