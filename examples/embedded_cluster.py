"""A whole Torua cluster inside one Trio program: a coordinator and three nodes.

Everything runs in one nursery, on loopback, on ports the OS picks (port 0),
with in-memory stores. The program waits until every node is healthy and the
cluster is green, writes and reads a few keys through the coordinator, prints
the shard map, then stops every service and exits 0 once the nursery is empty.

    python examples/embedded_cluster.py
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

import httpx
import trio

from torua.config import CoordinatorSettings, HealthSettings, NodeSettings
from torua.coordinator import Coordinator
from torua.node import Node

NODE_IDS = ("n1", "n2", "n3")
VALUES = {
    "greeting": b"hello, torua",
    "users/42/name": "Zoë".encode(),
    "config:retries": b"3",
    "blob": bytes(range(256)),
}


def data_path(key: str) -> str:
    """``/data/<key>`` with the key percent-encoded (``/`` in a key is allowed)."""
    return "/data/" + quote(key, safe="")


async def wait_until_ready(http: httpx.AsyncClient, nodes: int) -> None:
    """Poll GET /nodes until every node is healthy, then until the cluster is green."""
    while True:
        listed = (await http.get("/nodes")).json()["nodes"]
        if len(listed) == nodes and all(n["status"] == "healthy" for n in listed):
            info = (await http.get("/cluster/info")).json()
            if info["cluster_state"] == "green":  # every shard has R in-sync copies
                return
        await trio.sleep(0.1)


async def use_cluster(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        with trio.fail_after(30):
            await wait_until_ready(http, len(NODE_IDS))
        print(f"{len(NODE_IDS)} nodes healthy, cluster green")

        for key, value in VALUES.items():
            (await http.put(data_path(key), content=value)).raise_for_status()
        for key, value in VALUES.items():
            response = await http.get(data_path(key))
            response.raise_for_status()
            assert response.content == value, f"{key!r} read back {response.content!r}"
        print(f"wrote and read back {len(VALUES)} keys")

        (await http.delete(data_path("blob"))).raise_for_status()
        assert (await http.get(data_path("blob"))).status_code == 404
        print("deleted 'blob'; reading it now answers 404")

        shards = (await http.get("/shards")).json()
        print(
            f"shard map: {shards['num_shards']} shards, replication factor "
            f"{shards['replication_factor']}"
        )
        primaries = Counter(s["primary"] for s in shards["shards"])
        copies = Counter(n for s in shards["shards"] for n in [s["primary"], *s["replicas"]])
        for node_id in NODE_IDS:
            print(f"  {node_id}: {copies[node_id]} copies, {primaries[node_id]} primaries")
        info = (await http.get("/cluster/info")).json()
        print(f"cluster_state: {info['cluster_state']}")


async def main() -> None:
    coordinator = Coordinator(
        CoordinatorSettings(
            port=0,
            shards=8,
            replication_factor=2,
            memory=True,
            health=HealthSettings(interval=1.0, timeout=0.5),
        )
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(coordinator.run)
        print(f"coordinator at {url}")
        nodes = []
        for node_id in NODE_IDS:
            node = Node(NodeSettings(node_id=node_id, port=0, coordinator=url, memory=True))
            node_url = await nursery.start(node.run)
            print(f"node {node_id} at {node_url}")
            nodes.append(node)
        try:
            await use_cluster(url)
        finally:
            # stop() is synchronous and idempotent; run() returns once drained.
            for node in nodes:
                node.stop()
            coordinator.stop()
    print("stopped cleanly")


if __name__ == "__main__":
    trio.run(main)
