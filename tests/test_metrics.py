"""GET /metrics on the coordinator and on a node: the figures an operator would check."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LocalCluster
from torua.node.api import create_node_app
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore

DATA_ROUTE = "/data/<path:key>"


async def scrape(http: httpx.AsyncClient, url: str = "/metrics") -> dict[str, list]:
    """``{sample name: [(labels, value), ...]}`` of one scrape."""
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


async def test_coordinator_metrics(cluster: LocalCluster) -> None:
    http = cluster.http
    values = {f"key-{i}": f"value-{i}".encode() for i in range(10)}
    for key, data in values.items():
        assert (await http.put(f"/data/{key}", content=data)).status_code == 204
    for key in values:
        assert (await http.get(f"/data/{key}")).status_code == 200
    assert (await http.get("/data/no-such-key")).status_code == 404
    assert (await http.put("/data/" + "k" * 2000, content=b"x")).status_code == 400
    assert (await http.get("/no/such/route/1")).status_code == 404
    assert (await http.get("/no/such/route/2")).status_code == 404

    samples = await scrape(http)

    assert value(samples, "torua_nodes", status="healthy") == 2
    assert value(samples, "torua_nodes", status="unhealthy") == 0
    assert value(samples, "torua_nodes_by_mode", mode="active") == 2
    copies = {labels["node"]: v for labels, v in samples["torua_node_copies"]}
    assert copies.keys() == {"n1", "n2"}
    assert sum(copies.values()) == 8 * 2  # shards * R
    assert value(samples, "torua_node_primaries") == 8
    assert value(samples, "torua_shards", state="active") == 8
    assert value(samples, "torua_shards") == 8
    assert value(samples, "torua_cluster_state", state="green") == 1
    assert value(samples, "torua_cluster_state") == 1
    assert value(samples, "torua_moves_running") == 0

    requests = "torua_http_request_duration_seconds_count"
    assert value(samples, requests, route=DATA_ROUTE) >= 22
    assert value(samples, requests, method="PUT", route=DATA_ROUTE, status="2xx") == 10
    assert value(samples, requests, method="GET", route=DATA_ROUTE, status="4xx") == 1
    # Unknown paths share one series: the label is the route template, never the path.
    routes = {labels["route"] for labels, _ in samples[requests]}
    assert "unmatched" in routes
    assert not any("no/such" in route or "key-" in route for route in routes)
    assert value(samples, requests, route="unmatched") == 2

    assert value(samples, "torua_http_errors_total", code="key_not_found") >= 1
    assert value(samples, "torua_http_errors_total", code="invalid_key") >= 1
    assert value(samples, "torua_http_errors_total", code="not_found") == 2
    written = sum(len(v) for v in values.values())
    assert value(samples, "torua_http_request_bytes_total", route=DATA_ROUTE) >= written
    assert value(samples, "torua_http_response_bytes_total", route=DATA_ROUTE) >= written

    assert value(samples, "torua_probes_total", result="ok") > 0
    assert value(samples, "torua_probes_total", result="fail") == 0
    assert value(samples, "torua_probe_latency_seconds_count", result="ok") > 0
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_node_metrics(cluster: LocalCluster) -> None:
    keys = [f"node-key-{i}" for i in range(20)]
    for key in keys:
        assert (await cluster.http.put(f"/data/{key}", content=b"12345")).status_code == 204

    # R = 2 on two nodes: each holds every shard, so each has every key.
    async with httpx.AsyncClient(base_url=cluster.nodes["n1"].url) as node:
        samples = await scrape(node)
    assert value(samples, "torua_node_info", node="n1") == 1
    assert value(samples, "torua_node_shards_held") == 8
    assert len(samples["torua_node_keys"]) == 8
    assert value(samples, "torua_node_keys") == len(keys)
    assert value(samples, "torua_node_bytes") == 5 * len(keys)
    assert value(samples, "torua_node_lease_valid") == 1
    # The coordinator's replicated writes arrived through the node's store route (a
    # write that met a node not yet told of its copy is retried once, so: at least).
    store_route = "/shard/<int:shard_id>/store/<path:key>"
    requests = "torua_http_request_duration_seconds_count"
    assert value(samples, requests, method="PUT", route=store_route) >= len(keys)
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_metrics_need_the_token() -> None:
    app = create_node_app(NodeRuntime(node_id="n1"), MemoryStore(), max_value=1024, token="s3cret")
    client = app.test_client()
    assert (await client.get("/health")).status_code == 200
    refused = await client.get("/metrics")
    assert refused.status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    allowed = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200
    text = (await allowed.get_data()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The refused scrapes are counted too, although the token check answered first.
    unauthorized = [
        s
        for s in families["torua_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
        and s.labels["route"] == "/metrics"
        and s.labels["status"] == "4xx"
    ]
    assert sum(s.value for s in unauthorized) == 2
    errors = {
        s.labels["code"]: s.value
        for s in families["torua_http_errors"].samples
        if s.name.endswith("_total")
    }
    assert errors == {"unauthorized": 1, "forbidden": 1}


async def test_separate_apps_keep_separate_registries() -> None:
    """Several services in one process (as in these tests) must not share series."""
    a = create_node_app(NodeRuntime(node_id="a"), MemoryStore(), max_value=1024).test_client()
    b = create_node_app(NodeRuntime(node_id="b"), MemoryStore(), max_value=1024).test_client()
    for _ in range(3):
        await a.get("/health")
    text = (await (await b.get("/metrics")).get_data()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    health = [
        s
        for s in families["torua_http_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["route"] == "/health"
    ]
    assert health == []
    info = [s.labels["node"] for s in families["torua_node_info"].samples]
    assert info == ["b"]
