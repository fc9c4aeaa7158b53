"""Fault injection under load: SIGSTOP, SIGCONT, SIGKILL and restart random nodes
while a writer and a reader run, then check every acknowledged write.

Its own nox session (`nox -s faults`, TORUA_FAULT_SECONDS=60 by default);
`.ci/run` runs it shortened. One fault at a time, R=2 over four nodes: the
cluster promises to lose nothing and to convict only nodes that were faulted.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from torua.green import cluster_green

from .checker import AckedWrites
from .procs import Proc, ProcessGroup, wait_until

pytestmark = pytest.mark.faults

INTERVAL, TIMEOUT, FAILURES = 1.0, 0.5, 3
DETECTION = (FAILURES - 1) * INTERVAL + TIMEOUT


@dataclass
class FaultLog:
    """When each node was faulted, to tell a fair conviction from a false one."""

    windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    injected: list[str] = field(default_factory=list)

    def faulted(self, node_id: str, start: float, end: float) -> None:
        self.windows.setdefault(node_id, []).append((start, end))

    def fair(self, node_id: str, seen_at: float) -> bool:
        # Convicted while faulted, or shortly after (the verdict outlives the fault
        # until the next good probes): allow detection time plus a margin.
        return any(
            start <= seen_at <= end + DETECTION + 3 * INTERVAL
            for start, end in self.windows.get(node_id, [])
        )


async def test_acknowledged_writes_survive_random_faults(tmp_path: Path) -> None:
    seconds = float(os.environ.get("TORUA_FAULT_SECONDS", "60"))
    rng = random.Random(int(os.environ.get("TORUA_FAULT_SEED", "7")))
    env = {
        "HEALTH_CHECK_INTERVAL": "1s",
        "HEALTH_CHECK_TIMEOUT": "500ms",
        "TORUA_REPLICATION_FACTOR": "2",
    }
    faults = FaultLog()
    convictions: list[tuple[str, float]] = []
    checker = AckedWrites()
    reads = 0

    async with ProcessGroup() as group:
        coordinator = await group.coordinator(env, data_dir=tmp_path)
        nodes: dict[str, Proc] = {}

        async def start_node(node_id: str) -> None:
            nodes[node_id] = await group.node(node_id, coordinator.url, env, data_dir=tmp_path)

        for i in range(1, 5):
            await start_node(f"n{i}")
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=15) as http:
            await wait_until(lambda: cluster_green(http), within=20, what="green cluster")
            stop = trio.Event()

            async def reader() -> None:
                nonlocal reads
                while not stop.is_set():
                    for key, acked in list(checker.acked.items())[:50]:
                        response = await http.get(f"/data/{key}")
                        reads += 1
                        if response.status_code == 200:
                            # Never older than what was acknowledged before the read began
                            # (a newer, in-flight value is fine).
                            assert _generation(response.content) >= _generation(acked), (
                                key,
                                acked,
                                response.content,
                            )
                    await trio.sleep(0.05)

            async def watcher() -> None:
                while not stop.is_set():
                    now = trio.current_time()
                    for node in (await http.get("/nodes")).json()["nodes"]:
                        if node["status"] == "unhealthy":
                            convictions.append((node["id"], now))
                    await trio.sleep(0.2)

            async def injector() -> None:
                deadline = trio.current_time() + seconds
                while trio.current_time() < deadline:
                    node_id = rng.choice(sorted(nodes))
                    proc = nodes[node_id]
                    start = trio.current_time()
                    if rng.random() < 0.5:
                        pause = rng.uniform(0.5, 4.0)
                        faults.injected.append(f"SIGSTOP {node_id} {pause:.1f}s")
                        proc.suspend()
                        await trio.sleep(pause)
                        proc.resume()
                    else:
                        faults.injected.append(f"SIGKILL+restart {node_id}")
                        proc.kill()
                        await proc.wait()
                        await trio.sleep(rng.uniform(0.5, 3.0))
                        await start_node(node_id)
                    await wait_until(
                        lambda n=node_id: _healthy(http, n),
                        within=30,
                        what=f"{node_id} healthy again",
                    )
                    faults.faulted(node_id, start, trio.current_time())
                    await trio.sleep(rng.uniform(0.5, 2.0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 200, stop=stop))
                nursery.start_soon(reader)
                nursery.start_soon(watcher)
                await injector()
                stop.set()
            await wait_until(lambda: cluster_green(http), within=60, what="green after the faults")
            lost = await checker.lost(http)

    print(f"faults injected: {len(faults.injected)} ({'; '.join(faults.injected)})")
    print(
        f"writes attempted {checker.attempts}, acknowledged keys {len(checker.acked)}, "
        f"unacknowledged {checker.failures}, reads {reads}, lost {len(lost)}"
    )
    assert faults.injected
    assert lost == []
    # Judged at the end, when every fault window is known.
    false_convictions = [f"{n} at {t:.1f}" for n, t in convictions if not faults.fair(n, t)]
    assert false_convictions == []


def _generation(value: bytes) -> int:
    return int(value.rsplit(b"-g", 1)[1])


async def _healthy(http: httpx.AsyncClient, node_id: str) -> bool:
    nodes = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}
    return nodes.get(node_id, {}).get("status") == "healthy"
