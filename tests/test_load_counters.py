"""Per-shard request counters on a node, and the coordinator's rates and history of them."""

from __future__ import annotations

import json

import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LocalCluster, local_cluster
from tests.test_metrics import value
from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.control.health import ProbeRecord
from torua.coordinator.control.load import MIN_POLL, LoadMonitor
from torua.coordinator.control.load_history import MAX_POINTS, RATE_WINDOW, WINDOW, CopyRate, Series
from torua.coordinator.nodes.client import NodeUnreachable, Reply
from torua.coordinator.state.state import ClusterState
from torua.node.api import create_node_app
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore


async def test_store_requests_are_counted_per_shard_in_stats_info_and_metrics() -> None:
    runtime = NodeRuntime(node_id="n1")
    runtime.assign([0, 1], seq=1, lease=60.0, interval=1.0)
    client = create_node_app(runtime, MemoryStore(), max_value=1024).test_client()
    for i in range(3):
        assert (await client.put(f"/shard/0/store/k{i}", data=b"12345")).status_code == 204
    assert (await client.get("/shard/0/store/k0")).status_code == 200
    assert (await client.get("/shard/0/store/missing")).status_code == 404
    assert (await client.delete("/shard/0/store/k1")).status_code == 204
    assert (await client.get("/shard/1/store/k0")).status_code == 404
    # Refused before the store: not held, or a bad key. Not load on any copy.
    assert (await client.get("/shard/7/store/k0")).status_code == 404
    assert (await client.put("/shard/0/store/" + "k" * 2000, data=b"x")).status_code == 400

    stats = await (await client.get("/shard/0/stats")).get_json()
    assert stats == {
        "shard_id": 0,
        "keys": 2,
        "bytes": 10,
        "reads": 2,
        "writes": 4,
        "bytes_read": 5,
        "bytes_written": 15,
    }
    info = await (await client.get("/info")).get_json()
    by_shard = {s["shard_id"]: s for s in info["shards"]}
    assert by_shard[1]["reads"] == 1 and by_shard[1]["writes"] == 0
    assert by_shard[0]["writes"] == 4

    text = (await (await client.get("/metrics")).get_data()).decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    requests = "torua_node_shard_requests_total"
    assert value(samples, requests, shard="0", op="read") == 2
    assert value(samples, requests, shard="0", op="write") == 4
    assert value(samples, requests, shard="1", op="read") == 1
    assert (
        value(samples, "torua_node_shard_value_bytes_total", shard="0", direction="written") == 15
    )


def test_a_rate_spans_the_last_readings_and_restarts_with_the_counter() -> None:
    copy = CopyRate()
    assert copy.rate() is None
    copy.add(0.0, 0)
    copy.add(1.0, 50)
    copy.add(2.0, 100)
    assert copy.rate() == 50.0
    for t in range(3, 100):  # 10/s from now on; old readings leave the window
        copy.add(float(t), 100 + 10 * (t - 2))
    assert copy.rate() == 10.0
    assert copy.readings[-1][0] - copy.readings[0][0] <= RATE_WINDOW
    copy.add(100.0, 3)  # the node restarted
    assert copy.rate() is None
    copy.add(101.0, 13)
    assert copy.rate() == 10.0


def test_history_is_bounded_by_age_and_by_count() -> None:
    series = Series()
    for t in range(2000):
        series.add(float(t) * 0.5, 1.0)
    assert len(series) == MAX_POINTS
    series = Series()
    for t in range(0, 2000, 5):
        series.add(float(t), 1.0, None)
    points = series.points()
    assert points[-1] == (1995.0, 1.0, None)
    assert points[-1][0] - points[0][0] <= WINDOW


class FakeNodes:
    """Answers ``/info`` with counters that grow by ``per_poll`` reads per shard per call."""

    def __init__(self, per_poll: dict[str, dict[int, int]], hung: set[str]) -> None:
        self.per_poll, self.hung = per_poll, hung
        self.counts: dict[str, dict[int, int]] = {n: {} for n in per_poll}
        self.calls: list[tuple[float, str]] = []

    async def request(self, method: str, addr: str, path: str, *, deadline: float) -> Reply:
        node = addr.rsplit("/", 1)[-1]
        self.calls.append((trio.current_time(), node))
        if node in self.hung:
            await trio.sleep(deadline)
            raise NodeUnreachable(f"{addr} did not answer")
        counts = self.counts[node]
        shards = []
        for shard, step in self.per_poll[node].items():
            counts[shard] = counts.get(shard, 0) + step
            shards.append({"shard_id": shard, "keys": 1, "bytes": 7, "reads": counts[shard]})
        return Reply(200, json.dumps({"shards": shards}).encode(), {})


def two_node_state() -> ClusterState:
    settings = CoordinatorSettings(
        port=0,
        shards=2,
        replication_factor=1,
        memory=True,
        health=HealthSettings(interval=0.2, timeout=0.1),
    )
    state = ClusterState(settings)
    for node in ("n1", "n2", "n3"):
        state.registry.register(node, f"http://host/{node}", None)
        state.health_status[node] = "healthy"
    state.table.shards[0].copies = ["n1"]
    state.table.shards[1].copies = ["n2"]
    return state


async def test_monitor_polls_on_schedule_and_a_hung_node_delays_no_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state = two_node_state()
    nodes = FakeNodes({"n1": {0: 30}, "n2": {1: 5}, "n3": {}}, hung={"n3"})
    wall = [1_000_000.0]
    monitor = LoadMonitor(state, nodes, wall_clock=lambda: wall[0])  # type: ignore[arg-type]
    monitor.on_probe("n1", ProbeRecord(at=0, ok=True, latency_ms=4.0, error=None))
    monitor.on_probe("n1", ProbeRecord(at=0, ok=True, latency_ms=6.0, error=None))
    monitor.on_probe("n1", ProbeRecord(at=0, ok=False, latency_ms=150.0, error="timeout"))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        # Virtual time: the fourth round starts at 3 s and ends (n3 cut off) at 4 s.
        await trio.sleep_until(start + 4 * MIN_POLL - 0.001)
        assert monitor.polls == 3
        await trio.sleep_until(start + 4 * MIN_POLL + 0.001)
        assert monitor.polls == 4
        nursery.cancel_scope.cancel()
    n1_polls = [t - start for t, node in nodes.calls if node == "n1"]
    # Not every 0.2 s probe interval but every MIN_POLL, and the hung n3 (cut off
    # after one period) never pushes a round back.
    assert n1_polls[:4] == [0.0, MIN_POLL, 2 * MIN_POLL, 3 * MIN_POLL]
    # 30 reads per poll, 1 s apart: 30/s; n2's 5 per poll: 5/s.
    assert monitor.copy_rates() == {(0, "n1"): 30.0, (1, "n2"): 5.0}
    assert monitor.shard_rate(0) == 30.0
    assert monitor.node_rate("n3") == 0.0  # holds nothing
    history = monitor.history()
    n1 = next(n for n in history["nodes"] if n["id"] == "n1")
    assert n1["points"][0] == (1_000_000.0, None, 5.0)  # failed probes leave latency alone
    assert n1["points"][-1][1] == 30.0
    assert len(n1["points"]) == 4
    shard0 = history["shards"][0]
    assert (shard0["rate"], shard0["keys"], shard0["bytes"]) == (30.0, 1, 7)


async def test_shards_show_rates_and_a_balanced_cluster_rebalances_by_load_to_nothing(
    cluster: LocalCluster,
) -> None:
    http = cluster.http
    for i in range(40):
        assert (await http.put(f"/data/k{i}", content=b"v")).status_code == 204
    load = cluster.coordinator.services.load  # type: ignore[union-attr]
    assert load is not None
    with trio.fail_after(10):
        while True:
            shards = (await http.get("/shards")).json()["shards"]
            if load.polls >= 2 and all(s["rate"] is not None for s in shards):
                break
            await trio.sleep(0.1)
    assert all(s["rate"] >= 0 for s in shards)
    before = await cluster.snapshot()
    # R = 2 on two nodes: each holds every shard; nothing could move anywhere.
    response = await http.post("/rebalance", json={"by": "load"})
    assert response.status_code == 200
    assert response.json()["moves"] == []
    assert (await http.post("/rebalance")).json()["moves"] == []  # no body: copy counts
    assert await cluster.snapshot() == before
    history = (await http.get("/load")).json()
    assert history["window_seconds"] == WINDOW
    assert {n["id"] for n in history["nodes"]} == {"n1", "n2"}


async def test_the_plots_script_is_served_from_the_package_and_allowed_by_the_page() -> None:
    async with local_cluster(nodes=0) as cluster:
        page = await cluster.http.get("/")
        assert '<script src="/dashboard/plots.js"></script>' in page.text
        assert "'self'" in page.headers["content-security-policy"].split("script-src")[1]
        script = await cluster.http.get("/dashboard/plots.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "fetch(path" in script.text and "/load" in script.text
        assert "https://" not in script.text  # nothing from elsewhere
