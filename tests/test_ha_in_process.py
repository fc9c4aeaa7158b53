"""Two HA coordinators and two nodes in one Trio run, on a fake etcd.

The library view of several coordinators: a leader is elected, a follower forwards writes
and serves state reads, a stopped leader hands over at once (it gives its
lease back), and nothing either coordinator started outlives it.
"""

from __future__ import annotations

import httpx
import trio

from tests.conftest import FAST_HEALTH, _all_tasks
from tests.fake_etcd import FakeEtcd
from tests.test_election import until_leading
from torua.config import CoordinatorSettings, NodeSettings
from torua.ha import HACoordinator
from torua.node import Node


def settings() -> CoordinatorSettings:
    return CoordinatorSettings(
        port=0,
        shards=8,
        replication_factor=2,
        health=FAST_HEALTH,
        memory=True,
        etcd_endpoints=("http://etcd.invalid:2379",),  # unused: the fake is passed in
        leader_ttl=2.0,
    )


async def _info(http: httpx.AsyncClient, url: str) -> dict:
    return (await http.get(url + "/cluster/info")).json()


async def test_leader_and_follower_in_one_nursery() -> None:
    etcd = FakeEtcd()
    tasks_before = _all_tasks()
    async with httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
        a = HACoordinator(settings(), etcd=etcd.client("a"))
        b = HACoordinator(settings(), etcd=etcd.client("b"))
        urls = [await nursery.start(a.run), await nursery.start(b.run)]
        nodes = [
            Node(NodeSettings(node_id=f"n{i}", port=0, coordinator=",".join(urls), memory=True))
            for i in (1, 2)
        ]
        for node in nodes:
            await nursery.start(node.run)
        with trio.fail_after(20):
            while (await _info(http, urls[0])).get("cluster_state") != "green":  # noqa: ASYNC110 (HTTP polling: no event to wait on)
                await trio.sleep(0.05)
        leader = a if a.election and a.election.is_leader else b
        follower = b if leader is a else a
        assert (await _info(http, follower.url))["role"] == "follower"
        assert (await _info(http, follower.url))["leader"] == leader.url
        for i in range(20):
            response = await http.put(f"{follower.url}/data/k{i}", content=f"v{i}".encode())
            assert response.status_code == 204, response.text
        shards = (await http.get(f"{follower.url}/shards")).json()
        assert sum(len(s["in_sync"]) for s in shards["shards"]) == 16
        # Forwarded to the leader, answered there natively, counted in its term's metrics.
        metrics = (await http.get(f"{leader.url}/metrics")).text
        assert 'method="PUT",route="/data/<path:key>",status="2xx"' in metrics
        epoch = leader.election.epoch if leader.election else 0

        leader.stop()
        election = follower.election
        assert election is not None
        with trio.fail_after(5):  # the lease is given back: no waiting for the TTL
            await until_leading(election)
        assert election.epoch > epoch
        with trio.fail_after(20):
            for i in range(20):
                # 503 until the new leader has probed the nodes: HTTP polling, no event.
                while (response := await http.get(f"{follower.url}/data/k{i}")).status_code == 503:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                assert response.content == f"v{i}".encode()
        for node in nodes:
            node.stop()
        follower.stop()
    leaked = _all_tasks() - tasks_before
    assert not leaked, [t.name for t in leaked]


async def test_a_connection_opened_to_a_follower_is_served_once_it_leads() -> None:
    """The leader is cut off from etcd and stops (as if killed: its lease is not given
    back). Kept-alive connections opened to the follower while it forwarded must be
    served by it as leader, request after request, on the same sockets."""
    etcd = FakeEtcd()
    async with trio.open_nursery() as nursery:
        a = HACoordinator(settings(), etcd=etcd.client("a"))
        await nursery.start(a.run)
        assert a.election is not None
        with trio.fail_after(5):
            await until_leading(a.election)
        b = HACoordinator(settings(), etcd=etcd.client("b"))
        urls = [a.url, await nursery.start(b.run)]
        nodes = [
            Node(NodeSettings(node_id=f"n{i}", port=0, coordinator=",".join(urls), memory=True))
            for i in (1, 2)
        ]
        for node in nodes:
            await nursery.start(node.run)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        kept = [httpx.AsyncClient(base_url=b.url, timeout=5, limits=limits) for _ in range(3)]
        with trio.fail_after(20):
            for client in kept:
                # 503 until the cluster is up: HTTP polling, no event to wait on.
                while (await client.put("/data/warm", content=b"v")).status_code != 204:  # noqa: ASYNC110
                    await trio.sleep(0.05)
        sockets = [await _socket_of(client) for client in kept]

        etcd.cut_off.add("a")
        a.stop()
        assert b.election is not None
        with trio.fail_after(10):
            await until_leading(b.election)
        async with httpx.AsyncClient(base_url=b.url, timeout=5) as fresh:
            with trio.fail_after(20):
                # The new leader probes the nodes first: HTTP polling, no event.
                while (await fresh.put("/data/fresh", content=b"v")).status_code != 204:  # noqa: ASYNC110
                    await trio.sleep(0.05)
        for client, before in zip(kept, sockets, strict=True):
            for i in range(20):
                response = await client.put(f"/data/k{i}", content=b"v")
                assert response.status_code == 204, response.text
            assert await _socket_of(client) == before, "the kept connection was not reused"
            await client.aclose()
        for node in nodes:
            node.stop()
        b.stop()


async def _socket_of(client: httpx.AsyncClient) -> object:
    """The client-side address of the connection a request went over."""
    response = await client.get("/health")
    return response.extensions["network_stream"].get_extra_info("client_addr")
