"""No acknowledged write is lost: node SIGKILL, moves under traffic, coordinator
restart, `up` restart on the same data directory, and R=1 with a node down.

Each scenario drives real processes on loopback and checks every acknowledged
write with :class:`tests.checker.AckedWrites`.
"""

from __future__ import annotations

import re
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from torua.cluster import shard_for_key
from torua.green import cluster_green

from .checker import AckedWrites
from .procs import ProcessGroup, stop_up, wait_until
from .test_e2e_cluster import free_port, nodes_by_id
from .test_examples import free_port_run

pytestmark = pytest.mark.e2e

FAST = {"HEALTH_CHECK_INTERVAL": "1s"}


async def shard_states(http: httpx.AsyncClient) -> set[str]:
    return {s["state"] for s in (await http.get("/shards")).json()["shards"]}


green = cluster_green  # test_e2e_checks imports it from here


async def start_cluster(
    group: ProcessGroup, tmp: Path, nodes: int, env: dict[str, str], port: int = 0
):
    coordinator = await group.coordinator(env, data_dir=tmp, port=port)
    procs = {}
    for i in range(1, nodes + 1):
        procs[f"n{i}"] = await group.node(f"n{i}", coordinator.url, env, data_dir=tmp)
    return coordinator, procs


async def test_sigkill_one_node_r2_loses_nothing_and_heals(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, 3, FAST)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=15, what="green cluster")
            checker = AckedWrites()
            for i in range(500):
                assert await checker.put(http, f"key-{i}", f"value-{i}".encode())
            nodes["n1"].kill()
            await nodes["n1"].wait()
            assert await checker.lost(http) == [], "a read failed right after the SIGKILL"
            # Green right after the kill would only mean "not noticed yet".
            await wait_until(lambda: _n1_unhealthy(http), within=15, what="n1 detected")
            await wait_until(lambda: green(http), within=20, what="green again after SIGKILL")
            shards = (await http.get("/shards")).json()["shards"]
            assert all("n1" not in [s["primary"], *s["replicas"]] for s in shards)
            assert all(len(s["in_sync"]) == 2 for s in shards), "a new copy was built"
            assert await checker.lost(http) == []


async def test_writes_while_shards_move_lose_nothing(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, 2, FAST)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=15, what="green cluster")
            checker = AckedWrites()
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 300, stop=stop))
                await trio.sleep(1.0)  # writes under way before the join, not a condition
                await group.node("n3", coordinator.url, FAST, data_dir=tmp_path)
                await wait_until(lambda: _holds_copies(http, "n3"), within=10, what="n3 joined")
                await wait_until(lambda: green(http), within=30, what="green after join")
                for shard_id in range(4):
                    response = await http.post(
                        "/shards/assign", json={"shard_id": shard_id, "node_id": "n3"}
                    )
                    assert response.status_code == 200, response.text
                response = await http.post("/rebalance")
                assert response.status_code == 200
                await wait_until(lambda: green(http), within=30, what="green after moves")
                done = checker.attempts
                await wait_until(lambda: _more(checker, done + 300), within=30, what="writes")
                stop.set()
            assert checker.attempts >= 600
            assert checker.failures == 0
            assert await checker.lost(http) == []
            loads = [len(n["shards"]) for n in (await nodes_by_id(http)).values()]
            assert max(loads) - min(loads) <= 1


async def test_coordinator_sigkill_and_restart_mid_traffic(tmp_path: Path) -> None:
    port = free_port()
    async with ProcessGroup() as group:
        coordinator, _ = await start_cluster(group, tmp_path, 3, FAST, port)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=15, what="green cluster")
            cluster_id = (await http.get("/cluster/info")).json()["cluster_id"]
            checker = AckedWrites()
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 200, stop=stop, pause=0.002))
                await trio.sleep(1.5)
                coordinator.kill()
                await coordinator.wait()
                await trio.sleep(0.5)  # a real outage: writes fail while it is down
                await group.coordinator(FAST, data_dir=tmp_path, port=port)
                await wait_until(lambda: green(http), within=20, what="green after restart")
                await trio.sleep(1.0)
                stop.set()
            assert (await http.get("/cluster/info")).json()["cluster_id"] == cluster_id
            assert len(checker.acked) == 200
            assert await checker.lost(http) == []


async def test_r1_node_down_answers_503_never_a_wrong_value(tmp_path: Path) -> None:
    env = {**FAST, "TORUA_REPLICATION_FACTOR": "1"}
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, 2, env)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=15, what="green cluster")
            for i in range(100):
                assert (await http.put(f"/data/k{i}", content=b"old")).status_code == 204
            on_n1 = set((await nodes_by_id(http))["n1"]["shards"])
            keys = [f"k{i}" for i in range(100) if shard_for_key(f"k{i}", 16) in on_n1]
            assert keys
            nodes["n1"].kill()
            await nodes["n1"].wait()
            for key in keys[:5]:  # before detection: the only copy is unreachable
                assert (await http.get(f"/data/{key}")).status_code == 503
            await wait_until(lambda: _n1_unhealthy(http), within=10, what="n1 unhealthy")
            await wait_until(lambda: _incomplete(http), within=5, what="incomplete shards")
            new_key = keys[0]
            assert (await http.put(f"/data/{new_key}", content=b"new")).status_code == 204
            assert (await http.get(f"/data/{new_key}")).content == b"new"
            for key in keys[1:]:
                response = await http.get(f"/data/{key}")
                assert response.status_code == 503, (key, response.status_code)
                assert response.headers.get("Retry-After")
            info = (await http.get("/cluster/info")).json()
            assert info["cluster_state"] == "yellow"


async def _holds_copies(http: httpx.AsyncClient, node_id: str) -> bool:
    node = (await nodes_by_id(http)).get(node_id)
    return node is not None and node["status"] == "healthy" and bool(node["shards"])


async def _more(checker: AckedWrites, count: int) -> bool:
    return checker.attempts >= count


async def _n1_unhealthy(http: httpx.AsyncClient) -> bool:
    return (await nodes_by_id(http))["n1"]["status"] == "unhealthy"


async def _incomplete(http: httpx.AsyncClient) -> bool:
    return "incomplete" in await shard_states(http)


async def test_up_stop_and_start_on_the_same_data_dir_keeps_every_key(tmp_path: Path) -> None:
    port = free_port_run(4)
    argv = [
        sys.executable,
        "-m",
        "torua",
        "up",
        "--nodes",
        "3",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
    ]
    checker = AckedWrites()
    for run in range(2):
        async with ProcessGroup() as group:
            proc = await group.start(
                "up", argv[3:], {"HEALTH_CHECK_INTERVAL": "1s"}, ready_within=60
            )
            token = await wait_until(partial(_token, proc.output), within=5, what="token line")
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=proc.url, timeout=10, headers=headers) as http:
                if run == 0:
                    for i in range(300):
                        assert await checker.put(http, f"up-{i}", f"v{i}".encode())
                else:
                    assert await checker.lost(http) == []
            await stop_up(proc)


async def _token(lines: list[str]) -> str | None:
    for line in lines:
        match = re.match(r"\s+token\s+(\S+)", line)
        if match:
            return match.group(1)
    return None
