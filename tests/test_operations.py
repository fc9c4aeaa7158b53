"""Operator actions in one Trio run: maintenance, drain, evacuation, live config."""

from __future__ import annotations

import trio

from .conftest import local_cluster


async def _settled(http) -> bool:
    shards = (await http.get("/shards")).json()["shards"]
    return all(s["state"] == "active" for s in shards)


async def _wait(predicate, within: float = 10.0) -> None:
    with trio.fail_after(within):
        while not await predicate():  # noqa: ASYNC110 (remote state: nothing to wait on)
            await trio.sleep(0.05)


async def _write_keys(http, count: int) -> None:
    for i in range(count):
        assert (await http.put(f"/data/op-{i}", content=f"v{i}".encode())).status_code == 204


async def _read_keys(http, count: int) -> None:
    for i in range(count):
        response = await http.get(f"/data/op-{i}")
        assert (response.status_code, response.content) == (200, f"v{i}".encode())


async def test_drain_moves_every_copy_and_keeps_the_data() -> None:
    async with local_cluster(3) as cluster:
        http = cluster.http
        await _write_keys(http, 200)
        held = len((await http.get("/nodes")).json()["nodes"][0]["shards"])
        response = await http.post("/nodes/n1/drain")
        assert response.status_code == 200, response.text
        assert response.json()["moved"] == held
        node = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}["n1"]
        assert node["mode"] == "draining" and node["shards"] == []
        await _read_keys(http, 200)
        assert (await http.delete("/nodes/n1")).status_code == 204
        await _read_keys(http, 200)


async def test_drain_of_the_last_node_holding_copies_is_refused() -> None:
    async with local_cluster(1, replicas=1) as cluster:
        before = await cluster.snapshot()
        response = await cluster.http.post("/nodes/n1/drain")
        assert response.status_code == 409
        assert response.json()["error"] == "cannot_drain"
        assert await cluster.snapshot() == before


async def test_maintenance_on_moves_copies_off_and_off_returns_the_node() -> None:
    async with local_cluster(3) as cluster:
        http = cluster.http
        await _write_keys(http, 100)
        response = await http.post("/nodes/maintenance", json={"nodes": ["n1"], "enabled": True})
        assert response.status_code == 200
        assert response.json()["nodes"] == {"n1": "maintenance"}
        await _wait(lambda: _settled(http))
        nodes = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}
        assert nodes["n1"]["shards"] == [] and nodes["n1"]["mode"] == "maintenance"
        refused = await http.post("/shards/assign", json={"shard_id": 0, "node_id": "n1"})
        assert refused.status_code == 409
        await _read_keys(http, 100)
        response = await http.post("/nodes/maintenance", json={"nodes": ["n1"], "enabled": False})
        assert response.json()["nodes"] == {"n1": "active"}
        moves = (await http.post("/rebalance")).json()["moves"]
        assert moves
        loads = [len(n["shards"]) for n in (await http.get("/nodes")).json()["nodes"]]
        assert max(loads) - min(loads) <= 1
        await _read_keys(http, 100)


async def test_maintenance_with_an_unknown_node_changes_nothing() -> None:
    async with local_cluster(2) as cluster:
        before = await cluster.snapshot()
        response = await cluster.http.post(
            "/nodes/maintenance", json={"nodes": ["n1", "ghost"], "enabled": True}
        )
        assert response.status_code == 404
        assert await cluster.snapshot() == before


async def test_evacuation_reports_progress_until_done() -> None:
    async with local_cluster(3) as cluster:
        http = cluster.http
        await _write_keys(http, 100)
        response = await http.post("/nodes/n2/evacuate")
        assert response.status_code == 202
        started = response.json()
        assert started["total"] > 0 and started["state"] in ("running", "done")

        async def done() -> bool:
            progress = (await http.get("/nodes/n2/evacuation")).json()
            assert progress["moved"] + progress["remaining"] == progress["total"]
            return progress["state"] == "done"

        await _wait(done)
        nodes = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}
        assert nodes["n2"]["mode"] == "evacuating" and nodes["n2"]["shards"] == []
        await _read_keys(http, 100)


async def test_config_is_validated_applied_and_acknowledged_by_every_node() -> None:
    async with local_cluster(2) as cluster:
        http = cluster.http
        config = (await http.get("/cluster/config")).json()
        assert config["health_check_interval"] == "200ms"
        response = await http.put(
            "/cluster/config", json={"health_check_interval": "300ms", "max_moves": 4}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["config"]["health_check_interval"] == "300ms"
        assert body["config"]["max_moves"] == 4
        assert body["acks"] == {"n1": True, "n2": True}
        assert cluster.coordinator.services.monitor.settings.interval == 0.3
        for node in cluster.nodes.values():
            assert node.runtime.interval == 0.3
        assert config["tombstone_grace"] == "24h"
        response = await http.put("/cluster/config", json={"tombstone_grace": "90m"})
        assert response.json()["config"]["tombstone_grace"] == "1h30m"
        assert cluster.coordinator.state.tombstone_grace == 5400.0


async def test_a_bad_config_names_the_field_and_changes_nothing() -> None:
    async with local_cluster(2) as cluster:
        http = cluster.http
        before = (await http.get("/cluster/config")).json()
        for bad, field in [
            ({"health_check_interval": "soon"}, "health_check_interval"),
            ({"health_check_timeout": "5s"}, "health_check_timeout"),
            ({"health_check_failures": 0}, "health_check_failures"),
            ({"max_moves": 2, "surprise": 1}, "surprise"),
            ({"health_check_type": "udp"}, "health_check_type"),
            ({"tombstone_grace": "100ms", "max_moves": 3}, "tombstone_grace"),
            ({"tombstone_grace": None}, "tombstone_grace"),
        ]:
            response = await http.put("/cluster/config", json=bad)
            assert response.status_code == 400, bad
            assert field in response.json()["message"]
            assert (await http.get("/cluster/config")).json() == before
