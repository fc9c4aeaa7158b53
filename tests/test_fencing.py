"""A node obeys only the newest leader: writes and commands from an older epoch get 409."""

from __future__ import annotations

import time

import httpx
import trio

from torua.node.api import create_node_app
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore


def node() -> tuple[NodeRuntime, httpx.AsyncClient]:
    runtime = NodeRuntime(node_id="n1", durable=False)
    runtime.assign([0], seq=1, lease=3600, interval=5)
    app = create_node_app(runtime, MemoryStore(), max_value=1024)
    transport = httpx.ASGITransport(app=app)  # through the raw fast path, as in production
    return runtime, httpx.AsyncClient(transport=transport, base_url="http://n1")


def signed(epoch: int | str, version: int) -> dict[str, str]:
    return {"X-Torua-Epoch": str(epoch), "X-Torua-Version": str(version)}


async def test_writes_from_a_deposed_leader_are_refused() -> None:
    runtime, client = node()
    async with client:
        ok = await client.put("/shard/0/store/k", content=b"new leader", headers=signed(9, 10))
        assert ok.status_code == 204
        assert runtime.epoch == 9
        stale = await client.put("/shard/0/store/k", content=b"old leader", headers=signed(4, 20))
        assert stale.status_code == 409
        assert stale.json()["error"] == "stale_epoch"
        gone = await client.delete("/shard/0/store/k", headers=signed(4, 21))
        assert gone.status_code == 409
        # Reads are not fenced: an old leader may still read, and the value is unchanged.
        read = await client.get("/shard/0/store/k", headers={"X-Torua-Epoch": "4"})
        assert read.status_code == 200 and read.content == b"new leader"


async def test_commands_from_a_deposed_leader_are_refused() -> None:
    runtime, client = node()
    async with client:
        await client.get("/health", headers={"X-Torua-Epoch": "12"})  # any call teaches it
        assert runtime.epoch == 12
        message = {
            "type": "assignment",
            "shards": [],
            "seq": time.time_ns(),
            "lease": 10,
            "interval": 1,
        }
        refused = await client.post("/control", json=message, headers={"X-Torua-Epoch": "11"})
        assert refused.status_code == 409
        assert runtime.held == {0}
        drop = await client.post("/shard/0/drop", headers={"X-Torua-Epoch": "11"})
        assert drop.status_code == 409
        accepted = await client.post("/control", json=message, headers={"X-Torua-Epoch": "12"})
        assert accepted.status_code == 200
        assert runtime.held == set()


async def test_a_node_that_never_saw_an_epoch_fences_nothing() -> None:
    """A single coordinator sends no epoch at all."""
    runtime, client = node()
    async with client:
        put = await client.put("/shard/0/store/k", content=b"v", headers={"X-Torua-Version": "1"})
        assert put.status_code == 204
        assert runtime.epoch == 0
        bad = await client.put("/shard/0/store/k", content=b"v", headers=signed("soon", 2))
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_epoch"
    await trio.lowlevel.checkpoint()
