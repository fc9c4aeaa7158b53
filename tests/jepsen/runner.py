"""One Jepsen run: start the cluster, run clients and nemesis, heal, check, report."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from ..linearizability import KeyResult, check_history
from ..procs import ProcessGroup
from .cluster import Cluster, ClusterOptions
from .nemesis import FAULT_KINDS, Fault, Nemesis
from .report import render
from .workload import History, final_reads, run_client

__all__ = ["RunOptions", "RunResult", "run"]

HEAL_WITHIN = 120.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    seed: int = 7
    seconds: float = 40.0
    clients: int = 7
    keys: int = 10
    cluster: ClusterOptions = ClusterOptions()
    kinds: tuple[str, ...] = FAULT_KINDS
    max_steps: int = 20_000_000


@dataclass
class RunResult:
    options: RunOptions
    history: History
    faults: list[Fault]
    results: list[KeyResult]
    healed: bool
    unread: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    check_seconds: float = 0.0

    @property
    def violations(self) -> list[KeyResult]:
        return [r for r in self.results if r.ok is False]

    @property
    def passed(self) -> bool:
        return not self.violations and self.healed and not self.unread

    def report(self) -> str:
        return render(self)


async def run(options: RunOptions, workdir: Path) -> RunResult:
    """Everything the run started is reaped by its ProcessGroup before this returns."""
    rng = random.Random(options.seed)
    keys = [f"jepsen-{options.seed}-k{i}" for i in range(options.keys)]
    started = trio.current_time()
    history = History(origin=started)
    async with ProcessGroup() as group:
        cluster = Cluster(group, workdir, options.cluster)
        await cluster.start()
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as admin:
            if not await cluster.wait_green(admin, 60):
                raise AssertionError(f"the cluster never turned green; logs in {workdir}")
            nemesis = Nemesis(cluster, random.Random(rng.random()), options.kinds, started)
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for c in range(options.clients):
                    client_rng = random.Random(rng.random())
                    nursery.start_soon(run_client, c, cluster.url, keys, client_rng, history, stop)
                await nemesis.run(trio.current_time() + options.seconds)
                stop.set()
            await cluster.heal()
            healed = await _settle(cluster, admin)
            unread = await final_reads(cluster.url, keys, history, within=30)
    checking = time.perf_counter()
    results = check_history(history.checkable(), max_steps=options.max_steps)
    return RunResult(
        options,
        history,
        nemesis.faults,
        results,
        healed,
        unread,
        trio.current_time() - started,
        time.perf_counter() - checking,
    )


async def _settle(cluster: Cluster, admin: httpx.AsyncClient) -> bool:
    """Take every node out of maintenance (a fault may have been cut short) and
    wait for green."""
    nodes = sorted(cluster.nodes)
    with trio.move_on_after(HEAL_WITHIN) as scope:
        while True:
            try:
                response = await admin.post(
                    f"{cluster.url}/nodes/maintenance", json={"nodes": nodes, "enabled": False}
                )
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await trio.sleep(0.5)
    if scope.cancelled_caught:
        return False
    return await cluster.wait_green(admin, HEAL_WITHIN)
