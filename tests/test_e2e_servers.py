"""A small cluster on each HTTP server the processes can be told to use.

The native server is the default; hypercorn stays selectable
(``--server hypercorn``), so both are run here as real processes: the data
path through the coordinator and directly on a node, the control plane
through the ASGI bridge, an event stream, and a clean stop.
"""

from __future__ import annotations

import httpx
import pytest

from .procs import ProcessGroup, wait_until

pytestmark = pytest.mark.e2e

ENV = {"HEALTH_CHECK_INTERVAL": "1s", "TORUA_REPLICATION_FACTOR": "2"}


async def _green(http: httpx.AsyncClient) -> bool:
    nodes = (await http.get("/nodes")).json()["nodes"]
    info = (await http.get("/cluster/info")).json()
    return (
        len(nodes) == 2
        and all(n["status"] == "healthy" for n in nodes)
        and info["assigned_shards"] == info["total_shards"]
    )


@pytest.mark.parametrize("server", ["native", "hypercorn"])
async def test_a_cluster_serves_on_either_server(server: str) -> None:
    flag = ("--server", server)
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(ENV, *flag)
        nodes = [await group.node(f"n{i}", coordinator.url, ENV, *flag) for i in (1, 2)]
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=5) as http:
            await wait_until(lambda: _green(http), within=20, what="two healthy nodes")
            for i in range(50):
                assert (await http.put(f"/data/k{i}", content=b"v%d" % i)).status_code == 204
            for i in range(50):
                response = await http.get(f"/data/k{i}")
                assert (response.status_code, response.content) == (200, b"v%d" % i)
            assert (await http.delete("/data/k0")).status_code == 204
            missing = await http.get("/data/k0")
            assert missing.status_code == 404 and missing.json()["error"] == "key_not_found"
            too_big = await http.get("/data/" + "k" * 2000)
            assert too_big.json()["error"] == "invalid_key"

            shards = (await http.get("/shards")).json()
            shard = next(s for s in shards["shards"] if s["primary"] == "n1")
            node = await http.get(f"{nodes[0].url}/shard/{shard['shard_id']}/store/nope")
            assert node.status_code == 404 and node.json()["error"] == "key_not_found"

            metrics = (await http.get("/metrics")).text
            assert 'route="/data/<path:key>"' in metrics
            assert (await http.get("/openapi.json")).json()["paths"]

            async with http.stream("GET", "/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                async for line in events.aiter_lines():
                    if line.startswith("data:"):
                        break
        for proc in [*nodes, coordinator]:
            assert await group.stop(proc) == 0
