"""Operations against real processes: a node's graceful leave on SIGTERM, live
config with acknowledgements (and a rejected one), and broadcast."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import trio

from torua.green import cluster_green

from .procs import ProcessGroup, wait_until

pytestmark = pytest.mark.e2e

ENV = {"HEALTH_CHECK_INTERVAL": "1s"}


async def test_sigterm_drains_the_node_then_it_exits_0(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(ENV, data_dir=tmp_path)
        nodes = {
            n: await group.node(n, coordinator.url, ENV, data_dir=tmp_path)
            for n in ("n1", "n2", "n3")
        }
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=30) as http:
            await wait_until(lambda: cluster_green(http), within=20, what="green cluster")
            for i in range(300):
                assert (await http.put(f"/data/k{i}", content=b"v%d" % i)).status_code == 204
            held = {n["id"]: n["shards"] for n in (await http.get("/nodes")).json()["nodes"]}
            assert held["n1"]
            nodes["n1"].process.send_signal(signal.SIGTERM)
            with trio.fail_after(60):
                assert await nodes["n1"].wait() == 0  # only after the coordinator confirmed
            after = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}
            assert after["n1"]["mode"] == "draining" and after["n1"]["shards"] == []
            for i in range(300):
                response = await http.get(f"/data/k{i}")
                assert (response.status_code, response.content) == (200, b"v%d" % i)
            assert (await http.delete("/nodes/n1")).status_code == 204


async def test_config_is_acknowledged_by_every_node_and_a_bad_one_changes_nothing() -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(ENV)
        for n in ("n1", "n2"):
            await group.node(n, coordinator.url, ENV)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=30) as http:
            await wait_until(lambda: cluster_green(http), within=20, what="green cluster")
            response = await http.put(
                "/cluster/config", json={"health_check_interval": "2s", "node_capacity": 20}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["acks"] == {"n1": True, "n2": True}
            assert body["config"]["health_check_interval"] == "2s"
            before = (await http.get("/cluster/config")).json()
            rejected = await http.put(
                "/cluster/config", json={"health_check_timeout": "3s", "max_moves": 5}
            )
            assert rejected.status_code == 400
            assert "health_check_timeout" in rejected.json()["message"]
            assert (await http.get("/cluster/config")).json() == before

            sent = await http.post(
                "/broadcast",
                json={"path": "/control", "payload": {"type": "config", "config": before}},
            )
            assert sent.status_code == 200
            result = sent.json()
            assert result["sent_to"] == 2
            assert sorted(r["node_id"] for r in result["results"]) == ["n1", "n2"]
            assert all(r["ok"] and r["error"] is None for r in result["results"])
