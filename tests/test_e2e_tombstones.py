"""Tombstone GC against real processes: a deleted key stays deleted after a copy
that was away longer than the grace comes back."""

from __future__ import annotations

import httpx
import pytest

from torua.cluster import shard_for_key

from .procs import ProcessGroup, wait_until
from .test_e2e_cluster import nodes_by_id
from .test_e2e_durability import green

pytestmark = pytest.mark.e2e

ENV = {
    "HEALTH_CHECK_INTERVAL": "300ms",
    "TORUA_TOMBSTONE_GRACE": "1s",
    "TORUA_SHARDS": "4",
    "TORUA_REPLICATION_FACTOR": "2",
}


async def exported(http: httpx.AsyncClient, addr: str, shard: int) -> dict[str, str | None]:
    """The node's records of the shard, tombstones included (None), held or not."""
    response = await http.get(f"{addr}/shard/{shard}/export", params={"limit": 10000})
    return {r["key"]: r["value"] for r in response.json()["records"]}


async def test_a_copy_away_longer_than_the_grace_does_not_bring_a_deleted_key_back() -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(ENV)
        procs = {n: await group.node(n, coordinator.url, ENV) for n in ("n1", "n2", "n3")}
        async with (
            httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http,
            httpx.AsyncClient(timeout=10) as direct,
        ):
            await wait_until(lambda: green(http), within=20, what="green cluster")
            assert (await http.put("/data/doomed", content=b"old")).status_code == 204
            shard = shard_for_key("doomed", 4)
            primary = (await http.get("/shards")).json()["shards"][shard]
            away = primary["replicas"][0]
            addr = {n: v["addr"] for n, v in (await nodes_by_id(http)).items()}

            procs[away].suspend()

            async def away_replaced() -> bool:
                nodes = await nodes_by_id(http)
                return nodes[away]["status"] == "unhealthy" and await green(http)

            await wait_until(away_replaced, within=20, what=f"{away} replaced")
            assert (await http.delete("/data/doomed")).status_code == 204
            holders = (await http.get("/shards")).json()["shards"][shard]
            holders = [holders["primary"], *holders["replicas"]]

            async def purged_everywhere() -> bool:
                for node in holders:
                    if "doomed" in await exported(direct, addr[node], shard):
                        return False
                return True

            await wait_until(purged_everywhere, within=20, what="the tombstone purged")
            procs[away].resume()
            await wait_until(lambda: _healthy(http, away), within=20, what=f"{away} healthy again")
            # It still holds the value from before the delete: the case that matters.
            assert (await exported(direct, addr[away], shard)).get("doomed") is not None
            response = await http.post("/shards/assign", json={"shard_id": shard, "node_id": away})
            assert response.status_code == 200, response.text
            await wait_until(lambda: green(http), within=20, what="green with the copy back")
            assert (await http.get("/shards")).json()["shards"][shard]["primary"] == away
            assert (await http.get("/data/doomed")).status_code == 404
            assert "doomed" not in await exported(direct, addr[away], shard)


async def _healthy(http: httpx.AsyncClient, node: str) -> bool:
    return (await nodes_by_id(http))[node]["status"] == "healthy"
