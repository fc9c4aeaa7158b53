"""Node self-checks against real processes: a disk over its watermark.

The watermarks are set tiny (any real disk is more than 0.001 % used), which is
how a full disk looks to the node without filling one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .checker import AckedWrites
from .procs import ProcessGroup, wait_until
from .test_e2e_cluster import nodes_by_id
from .test_e2e_durability import green

pytestmark = pytest.mark.e2e

FAST = {"HEALTH_CHECK_INTERVAL": "500ms", "TORUA_CHECK_INTERVAL": "200ms"}
DISK_WARNS = {"TORUA_DISK_WARN": "0.001%", "TORUA_DISK_CRITICAL": "100%"}
DISK_CRITICAL = {"TORUA_DISK_WARN": "0.001%", "TORUA_DISK_CRITICAL": "0.001%"}


async def test_a_node_whose_disk_warns_takes_no_new_copies(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(FAST, data_dir=tmp_path)
        for node in ("n1", "n2"):
            await group.node(node, coordinator.url, FAST, data_dir=tmp_path)
        await group.node("n3", coordinator.url, {**FAST, **DISK_WARNS}, data_dir=tmp_path)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:

            async def n3_healthy_and_warning() -> bool:
                n3 = (await nodes_by_id(http)).get("n3")
                return bool(n3) and n3["status"] == "healthy" and bool(n3["checks"])

            await wait_until(n3_healthy_and_warning, within=20, what="n3 healthy, checks seen")
            await wait_until(lambda: green(http), within=20, what="green cluster")
            nodes = await nodes_by_id(http)
            checks = {c["name"]: c for c in nodes["n3"]["checks"]}
            assert checks["disk"]["state"] == "warning"
            assert "0.001% used" in checks["disk"]["output"]
            assert checks["store"]["state"] == "passing"
            assert {c["state"] for c in nodes["n1"]["checks"]} == {"passing"}
            assert nodes["n3"]["shards"] == []
            moves = (await http.post("/rebalance")).json()
            assert all(m.get("target") != "n3" for m in moves["moves"]), moves
            assert (await nodes_by_id(http))["n3"]["shards"] == []


async def test_a_node_whose_disk_turns_critical_is_unhealthy_and_its_copies_move(
    tmp_path: Path,
) -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(FAST, data_dir=tmp_path)
        nodes = {}
        for node in ("n1", "n2", "n3"):
            nodes[node] = await group.node(node, coordinator.url, FAST, data_dir=tmp_path)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            checker = AckedWrites()
            for i in range(200):
                assert await checker.put(http, f"key-{i}", f"value-{i}".encode())
            held = (await nodes_by_id(http))["n3"]["shards"]
            assert held
            # The same node, same data, now over its critical watermark.
            nodes["n3"].kill()
            await nodes["n3"].wait()
            await group.node("n3", coordinator.url, {**FAST, **DISK_CRITICAL}, data_dir=tmp_path)

            async def n3_critical_and_empty() -> bool:
                n3 = (await nodes_by_id(http))["n3"]
                critical = any(c["state"] == "critical" for c in n3["checks"])
                return n3["status"] == "unhealthy" and critical and n3["shards"] == []

            await wait_until(n3_critical_and_empty, within=30, what="n3 unhealthy, copies moved")
            await wait_until(lambda: green(http), within=30, what="green without n3")
            history = (await http.get("/nodes/n3/health")).json()
            assert any((p["error"] or "").startswith("critical: disk") for p in history)
            assert await checker.lost(http) == []
