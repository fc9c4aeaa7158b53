"""Shared fixtures: an in-process cluster (coordinator + nodes in this Trio run)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from torua.config import CoordinatorSettings, HealthSettings, NodeSettings
from torua.coordinator import Coordinator
from torua.node import Node

FAST_HEALTH = HealthSettings(interval=0.2, timeout=0.15, failures=2, successes=1)


class LocalCluster:
    def __init__(self, nursery: trio.Nursery, coordinator: Coordinator) -> None:
        self.nursery = nursery
        self.coordinator = coordinator
        self.nodes: dict[str, Node] = {}
        self.http = httpx.AsyncClient(base_url=coordinator.url, timeout=10.0)

    async def add_node(self, node_id: str, *, capacity: int | None = None) -> Node:
        node = Node(
            NodeSettings(
                node_id=node_id,
                port=0,
                coordinator=self.coordinator.url,
                capacity=capacity,
                memory=True,
                register_backoff_max=0.2,
            )
        )
        await self.nursery.start(node.run)
        self.nodes[node_id] = node
        return node

    async def wait_healthy(self, count: int) -> None:
        """``count`` nodes healthy and placement done with them: every shard active
        with as many in-sync copies as there are nodes for it, and every healthy
        node holding a copy. All shards active is not enough on its own: right
        after the last node turns healthy they still sit on the others, and
        placement has yet to give it its share."""
        with trio.fail_after(10):
            while True:
                nodes = (await self.http.get("/nodes")).json()["nodes"]
                healthy = [n for n in nodes if n["status"] == "healthy"]
                if len(healthy) >= count:
                    table = (await self.http.get("/shards")).json()
                    want = min(table["replication_factor"], len(healthy))
                    shards = table["shards"]
                    placed = all(
                        s["state"] == "active" and len(s["in_sync"]) == want for s in shards
                    )
                    if placed and all(n["shards"] for n in healthy):
                        return
                await trio.sleep(0.05)

    async def snapshot(self) -> tuple:
        """Everything a bad request must leave unchanged."""
        nodes = (await self.http.get("/nodes")).json()["nodes"]
        for node in nodes:
            # Probe bookkeeping moves on by itself; membership and placement must not.
            node.pop("last_health_check")
            node.pop("consecutive_failures")
            node.pop("checks")  # the nodes' self-checks (timings) too
        shards = (await self.http.get("/shards")).json()
        for shard in shards["shards"]:
            shard.pop("rate")  # a measurement, like the probe bookkeeping
        info = (await self.http.get("/cluster/info")).json()
        info.pop("uptime")
        return nodes, shards, info


@asynccontextmanager
async def local_cluster(
    nodes: int = 2, *, replicas: int = 2, shards: int = 8, health: HealthSettings = FAST_HEALTH
) -> AsyncIterator[LocalCluster]:
    settings = CoordinatorSettings(
        port=0, shards=shards, replication_factor=replicas, health=health, memory=True
    )
    tasks_before = _all_tasks()
    threads_before = set(threading.enumerate())
    async with trio.open_nursery() as nursery:
        coordinator = Coordinator(settings)
        await nursery.start(coordinator.run)
        cluster = LocalCluster(nursery, coordinator)
        try:
            for i in range(1, nodes + 1):
                await cluster.add_node(f"n{i}")
            if nodes:
                await cluster.wait_healthy(nodes)
            yield cluster
        finally:
            await cluster.http.aclose()
            for node in cluster.nodes.values():
                node.stop()
            coordinator.stop()
    # Nothing the services started may outlive them: no Trio task, no thread.
    leaked_tasks = _all_tasks() - tasks_before
    assert not leaked_tasks, f"Trio tasks outlived the cluster: {[t.name for t in leaked_tasks]}"
    leftover = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    if leftover:
        # trio's thread cache parks idle workers briefly; give them a moment to exit.
        with trio.move_on_after(5):
            while leftover := _busy(leftover):  # noqa: ASYNC110 (threads have no event)
                await trio.sleep(0.05)
    assert not leftover, f"threads outlived the cluster: {leftover}"


def _busy(threads: list[threading.Thread]) -> list[threading.Thread]:
    """Threads still alive, leaving out trio's idle cached workers."""
    return [t for t in threads if t.is_alive() and not t.name.startswith("Trio thread")]


def _all_tasks() -> set[trio.lowlevel.Task]:
    """Every live task in this Trio run."""
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    async with local_cluster() as c:
        yield c
