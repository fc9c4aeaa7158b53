"""Planned shutdowns and the replica delay through the API, in one Trio run."""

from __future__ import annotations

import json

import pytest
import trio

from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.state.persistence import restore, snapshot
from torua.coordinator.state.state import ClusterState

from .conftest import local_cluster

# Slower than the shared default: writes here must not meet a lapsed lease on a
# busy machine (the lease is 3 intervals plus the timeout).
CALM = HealthSettings(interval=0.5, timeout=0.4, failures=3, successes=1)


async def _wait(predicate, within: float = 10.0) -> None:
    with trio.fail_after(within):
        while not await predicate():  # noqa: ASYNC110 (remote state: nothing to wait on)
            await trio.sleep(0.05)


BAD_SHUTDOWNS = [
    ({"type": "reboot"}, "invalid_field"),
    ({"type": "restart", "allocation_delay": "5"}, "invalid_field"),
    ({"type": "restart", "allocation_delay": "25h"}, "invalid_field"),
    ({"type": "restart", "allocation_delay": 300}, "invalid_field"),
    ({"type": "remove", "allocation_delay": "1m"}, "invalid_field"),
    ({"type": "restart", "surprise": True}, "invalid_field"),
    ({}, "invalid_field"),
    ([], "malformed_json"),
]


@pytest.mark.parametrize(("body", "code"), BAD_SHUTDOWNS)
async def test_bad_shutdown_requests_change_nothing(body: object, code: str) -> None:
    async with local_cluster(2) as cluster:
        before = await cluster.snapshot()
        response = await cluster.http.put("/nodes/n1/shutdown", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == code
        assert await cluster.snapshot() == before
        assert (await cluster.http.get("/nodes/n1/shutdown")).status_code == 404


async def test_shutdown_of_an_unknown_node_is_404() -> None:
    async with local_cluster(1, replicas=1) as cluster:
        http = cluster.http
        response = await http.put("/nodes/ghost/shutdown", json={"type": "restart"})
        assert (response.status_code, response.json()["error"]) == (404, "node_not_found")
        assert (await http.get("/nodes/ghost/shutdown")).status_code == 404
        assert (await http.delete("/nodes/n1/shutdown")).json()["error"] == "no_shutdown"
        response = await http.put("/nodes/bad%20id/shutdown", json={"type": "restart"})
        assert response.status_code == 404


async def test_replica_delay_is_a_live_setting() -> None:
    async with local_cluster(2) as cluster:
        http = cluster.http
        assert (await http.get("/cluster/config")).json()["replica_delay"] == "0s"
        response = await http.put("/cluster/config", json={"replica_delay": "1m30s"})
        assert response.status_code == 200, response.text
        assert response.json()["config"]["replica_delay"] == "1m30s"
        for bad in ("90", "25h", None, 90):
            response = await http.put("/cluster/config", json={"replica_delay": bad})
            assert response.status_code == 400, bad
        assert (await http.get("/cluster/config")).json()["replica_delay"] == "1m30s"


async def test_restarting_node_keeps_its_copies_and_catches_up_by_delta() -> None:
    async with local_cluster(3, health=CALM) as cluster:
        http = cluster.http
        for i in range(200):
            assert (await http.put(f"/data/k{i}", content=b"before")).status_code == 204
        copies_before = {
            s["shard_id"]: {s["primary"], *s["replicas"]}
            for s in (await http.get("/shards")).json()["shards"]
        }
        mover = cluster.coordinator.services.mover  # type: ignore[attr-defined]
        full_before = mover.fill_bytes["full"]
        response = await http.put(
            "/nodes/n1/shutdown", json={"type": "restart", "allocation_delay": "10m"}
        )
        assert response.status_code == 200
        assert response.json()["status"] == "waiting"
        assert response.json()["allocation_delay"] == "10m"

        # What a node stopping with SIGTERM does: it asks to be drained.
        response = await http.post("/nodes/n1/drain")
        assert response.json() == {"node_id": "n1", "moved": 0, "restart": True}
        view = (await http.get("/nodes/n1/shutdown")).json()
        assert view["status"] == "away" and view["deadline"] is not None
        for i in range(200):
            assert (await http.put(f"/data/k{i}", content=b"after")).status_code == 204
        shards = (await http.get("/shards")).json()["shards"]
        held = [s for s in shards if "n1" in {s["primary"], *s["replicas"]}]
        assert held and all("n1" not in s["in_sync"] for s in held)
        assert all(s["primary"] != "n1" for s in shards), "an away node kept a lead"
        assert all(s["health"] == "yellow" and "n1 is away" in s["reason"] for s in held)
        info = (await http.get("/cluster/info")).json()
        assert info["cluster_state"] == "yellow"
        assert {s["shard_id"]: {s["primary"], *s["replicas"]} for s in shards} == copies_before

        # The node registers again (as a restarted one would): it catches up.
        runtime = cluster.nodes["n1"].runtime
        node = {"id": "n1", "addr": runtime.url, "incarnation": runtime.incarnation}
        assert (await http.post("/register", json={"node": node})).status_code == 204
        await _wait(lambda: _green(http))
        assert mover.fill_bytes["full"] == full_before
        assert mover.fill_bytes["delta"] > 0
        assert (await http.get("/nodes/n1/shutdown")).json()["status"] == "complete"
        for i in range(200):
            assert (await http.get(f"/data/k{i}")).content == b"after"
        assert (await http.delete("/nodes/n1/shutdown")).status_code == 204


async def _green(http) -> bool:
    info = (await http.get("/cluster/info")).json()
    return bool(info["cluster_state"] == "green")


async def test_remove_notice_moves_every_copy_off() -> None:
    async with local_cluster(3, health=CALM) as cluster:
        http = cluster.http
        for i in range(50):
            assert (await http.put(f"/data/r{i}", content=b"v")).status_code == 204
        response = await http.put("/nodes/n2/shutdown", json={"type": "remove"})
        assert response.status_code == 200
        assert response.json()["type"] == "remove"

        async def done() -> bool:
            return bool((await http.get("/nodes/n2/shutdown")).json()["status"] == "complete")

        await _wait(done)
        node = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}["n2"]
        assert node["mode"] == "draining" and node["shards"] == []
        for i in range(50):
            assert (await http.get(f"/data/r{i}")).content == b"v"


def test_a_hold_outlives_a_coordinator_restart() -> None:
    state = ClusterState(CoordinatorSettings(shards=4, replica_delay=30))
    state.registry.register("n1", "http://127.0.0.1:1", None)
    state.shutdowns.request("n1", "restart", 120)
    state.shutdowns.left("n1", replica_delay=30, copies=2)
    saved = json.loads(json.dumps(snapshot(state)))
    again = ClusterState(CoordinatorSettings(shards=4))
    restore(again, saved)
    assert again.replica_delay == 30
    assert again.shutdowns.holds("n1") and again.shutdowns.gone("n1")
    assert again.shutdowns.status("n1") == "away"
    assert not again.is_up("n1")
