"""Fault injection with three coordinators on etcd: the leader, followers and nodes
are frozen, killed and restarted at random while writes and reads go through
every coordinator in turn; then every acknowledged write must read back.

Part of ``nox -s faults`` (TORUA_FAULT_SECONDS, default 60).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import httpx
import pytest
import trio

from tests.checker import AckedWrites
from tests.procs import Proc, ProcessGroup, needs_etcd, wait_until
from tests.test_fault_injection import _generation
from torua.ha.local_etcd import free_port

pytestmark = [
    pytest.mark.faults,
    needs_etcd,
]

TTL = 2.0
ENV = {
    "HEALTH_CHECK_INTERVAL": "1s",
    "HEALTH_CHECK_TIMEOUT": "500ms",
    "TORUA_REPLICATION_FACTOR": "2",
    "TORUA_LEADER_TTL": f"{TTL:g}s",
}


async def test_acknowledged_writes_survive_coordinator_faults(tmp_path: Path) -> None:
    seconds = float(os.environ.get("TORUA_FAULT_SECONDS", "60"))
    rng = random.Random(int(os.environ.get("TORUA_FAULT_SEED", "11")))
    checker = AckedWrites()
    injected: list[str] = []
    reads = 0
    async with ProcessGroup() as group:
        etcd = await group.etcd(tmp_path / "etcd")
        env = {**ENV, "TORUA_ETCD_ENDPOINTS": etcd.url}
        ports = [free_port() for _ in range(3)]
        coordinators = {p: await group.coordinator(env, port=p) for p in ports}
        urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        nodes: dict[str, Proc] = {}

        async def start_node(node_id: str) -> None:
            nodes[node_id] = await group.node(node_id, urls, env, data_dir=tmp_path)

        for i in range(1, 5):
            await start_node(f"n{i}")
        clients = [httpx.AsyncClient(base_url=c.url, timeout=15) for c in coordinators.values()]
        try:
            await wait_until(lambda: _settled(clients), within=60, what="green cluster")
            stop = trio.Event()

            async def writer() -> None:
                generation = 0
                while not stop.is_set():
                    for i in range(120):
                        http = clients[(i + generation) % 3]
                        await checker.put(http, f"k{i}", f"k{i}-g{generation}".encode())
                    generation += 1

            async def reader() -> None:
                nonlocal reads
                while not stop.is_set():
                    for key, acked in list(checker.acked.items())[:40]:
                        try:
                            response = await rng.choice(clients).get(f"/data/{key}")
                        except httpx.HTTPError:
                            continue  # that coordinator is down: nothing to judge
                        reads += 1
                        if response.status_code == 200:
                            assert _generation(response.content) >= _generation(acked), key
                    await trio.sleep(0.05)

            async def injector() -> None:
                deadline = trio.current_time() + seconds
                while trio.current_time() < deadline:
                    if rng.random() < 0.6:
                        port = rng.choice(ports)
                        proc, name = coordinators[port], f"coordinator :{port}"
                    else:
                        node_id = rng.choice(sorted(nodes))
                        proc, name, port = nodes[node_id], node_id, 0
                    if rng.random() < 0.5:
                        # Sometimes shorter than the lease, sometimes well past it.
                        pause = rng.uniform(0.5, 2.5 * TTL)
                        injected.append(f"SIGSTOP {name} {pause:.1f}s")
                        proc.suspend()
                        await trio.sleep(pause)
                        proc.resume()
                    else:
                        injected.append(f"SIGKILL+restart {name}")
                        proc.kill()
                        await proc.wait()
                        await trio.sleep(rng.uniform(0.5, 2.0))
                        if port:
                            coordinators[port] = await group.coordinator(env, port=port)
                        else:
                            await start_node(name)
                    await wait_until(lambda: _settled(clients), within=60, what="settled")
                    await trio.sleep(rng.uniform(0.5, 2.0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                nursery.start_soon(reader)
                await injector()
                stop.set()
            await wait_until(lambda: _settled(clients), within=60, what="green after faults")
            lost = await checker.lost(clients[0])
        finally:
            for client in clients:
                await client.aclose()
    print(f"faults injected: {len(injected)} ({'; '.join(injected)})")
    print(
        f"writes attempted {checker.attempts}, acknowledged keys {len(checker.acked)}, "
        f"unacknowledged {checker.failures}, reads {reads}, lost {len(lost)}"
    )
    assert injected
    assert lost == []


async def _settled(clients: list[httpx.AsyncClient]) -> bool:
    """Exactly one coordinator leads, every coordinator names it, and it is green.

    Naming the same leader is not enough: after the leader is killed and
    restarted on its port, every coordinator (the new process too) names that
    URL until the dead instance's lease lapses, yet nobody leads.
    """
    leaders: set[str | None] = set()
    leading: list[dict[str, object]] = []
    try:
        for client in clients:
            response = await client.get("/cluster/info")
            if response.status_code != 200:
                return False
            info = response.json()
            leaders.add(info["leader"])
            if info["role"] == "leader":
                leading.append(info)
                if info["cluster_state"] != "green" or info["leader"] != str(
                    client.base_url
                ).rstrip("/"):
                    return False
    except httpx.HTTPError:
        return False
    return len(leading) == 1 and len(leaders) == 1 and None not in leaders
