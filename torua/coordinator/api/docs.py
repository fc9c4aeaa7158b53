"""The coordinator's routes as ``/openapi.json`` documents them."""

from __future__ import annotations

from torua.coordinator.api.cluster import BroadcastBody
from torua.coordinator.api.load import RebalanceBody
from torua.coordinator.api.nodes import RegisterBody
from torua.coordinator.api.operations import MaintenanceBody
from torua.coordinator.api.shards import AssignBody
from torua.coordinator.api.shutdowns import ShutdownBody
from torua.coordinator.control.live_config import ConfigBody
from torua.coordinator.data.bulk import BulkBody
from torua.http.openapi import Doc

__all__ = ["COORDINATOR_DOCS"]

COORDINATOR_DOCS: dict[tuple[str, str], Doc] = {
    ("GET", "/health"): Doc("liveness; never needs the token"),
    ("POST", "/register"): Doc("a node joins, or updates its address", RegisterBody, success=204),
    ("GET", "/nodes"): Doc("every node with health, mode and copies"),
    ("GET", "/nodes/<node_id>/info"): Doc("one node"),
    ("GET", "/nodes/<node_id>/health"): Doc("recent probes, newest first"),
    ("DELETE", "/nodes/<node_id>"): Doc("remove a node that holds no copy", success=204),
    ("GET", "/shards"): Doc("the shard map"),
    ("POST", "/shards/assign"): Doc("move a shard's primary, data included", AssignBody),
    ("POST", "/rebalance"): Doc(
        "even out copy counts (by: copies) or request rates (by: load), data included",
        RebalanceBody,
        optional_body=True,
    ),
    ("GET", "/load"): Doc("request rates per node and shard, with 15 minutes of history"),
    ("GET", "/dashboard/plots.js"): Doc("the dashboard's charts", content_type="text/javascript"),
    ("GET", "/data/<path:key>"): Doc("read a value", raw_response=True),
    ("PUT", "/data/<path:key>"): Doc("write a value", raw_body=True, success=204),
    ("DELETE", "/data/<path:key>"): Doc("delete a key", success=204),
    ("POST", "/data/_bulk"): Doc("many puts, gets and deletes in one request", BulkBody),
    ("POST", "/broadcast"): Doc("POST to every node concurrently", BroadcastBody),
    ("GET", "/cluster/info"): Doc("cluster state at a glance"),
    ("GET", "/cluster/config"): Doc("live settings"),
    ("PUT", "/cluster/config"): Doc("change live settings", ConfigBody),
    ("POST", "/nodes/maintenance"): Doc("maintenance on or off", MaintenanceBody),
    ("POST", "/nodes/<node_id>/drain"): Doc("graceful leave: move every copy off"),
    ("POST", "/nodes/<node_id>/evacuate"): Doc("start moving every copy off", success=202),
    ("GET", "/nodes/<node_id>/evacuation"): Doc("evacuation progress"),
    ("PUT", "/nodes/<node_id>/shutdown"): Doc(
        "plan a restart (copies wait for the node) or a removal", ShutdownBody
    ),
    ("GET", "/nodes/<node_id>/shutdown"): Doc("a planned shutdown's progress"),
    ("DELETE", "/nodes/<node_id>/shutdown"): Doc("withdraw a planned shutdown", success=204),
    ("GET", "/metrics"): Doc("Prometheus text format", content_type="text/plain"),
    ("GET", "/events"): Doc(
        "Server-Sent Events of the event bus", content_type="text/event-stream"
    ),
    ("GET", "/"): Doc("the dashboard", content_type="text/html"),
    ("GET", "/openapi.json"): Doc("this document"),
}
