"""The seeded nemesis: faults drawn from the seed, each undone.

Two loops run at once by default, one drawing network faults and one process
and operator faults, so faults overlap. Network: partitions (halves, one host
cut off, one direction only), wall-clock jumps, slow links, dropped
connections. Processes: node crashes with restart (data kept, or lost when
every shard is fully replicated), coordinator crashes (saved state kept) and
slow saves, freezes (SIGSTOP/SIGCONT). An operator, through the API:
maintenance on and off, evacuations, explicit shard moves, rebalances, live
health-check and move-limit changes. Every decision comes from a random source
seeded from the seed, so the fault log of a seed is the same on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from .cluster import CLIENT, ETCD, SimCluster

__all__ = ["FaultLog", "Nemesis"]

NETWORK_FAULTS = (
    ("partition", 3),
    ("isolate", 3),
    ("one_way", 2),
    ("clock", 2),
    ("slow", 2),
    ("reset", 2),
)
PROCESS_FAULTS = (
    ("crash", 4),
    ("wipe", 1),
    ("crash_coordinator", 2),
    ("slow_disk", 1),
    ("freeze", 3),
    ("maintenance", 2),
    ("evacuate", 1),
    ("assign", 2),
    ("rebalance", 1),
    ("config", 1),
)
FAULTS = NETWORK_FAULTS + PROCESS_FAULTS
OPERATOR_TIMEOUT = 10.0


@dataclass
class FaultLog:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(f"{trio.current_time():9.3f}  {text}")


class Nemesis:
    def __init__(
        self,
        cluster: SimCluster,
        rng: random.Random,
        log: FaultLog,
        *,
        healthy: Callable[[], bool],
    ) -> None:
        self.cluster = cluster
        self.healthy = healthy
        self.rng = rng
        self.log = log
        self.operator = httpx.AsyncClient(
            base_url=cluster.url,
            timeout=OPERATOR_TIMEOUT,
            transport=cluster.client_host.http_transport(),
        )

    def _servers(self) -> list[str]:
        return [*self.cluster.coordinators, *self.cluster.nodes]

    def _everyone(self) -> list[str]:
        etcd = [ETCD] if self.cluster.etcd is not None else []
        return [*self._servers(), *etcd, CLIENT]

    async def run(
        self, nursery: trio.Nursery, until: float, faults: Sequence[tuple[str, int]] = FAULTS
    ) -> None:
        kinds = [k for k, _ in faults]
        weights = [w for _, w in faults]
        while True:
            await trio.sleep(self.rng.uniform(0.5, 4.0))
            if trio.current_time() >= until:
                return
            kind = self.rng.choices(kinds, weights)[0]
            duration = self.rng.uniform(1.0, 12.0)
            await getattr(self, f"_{kind}")(nursery, duration)

    async def _partition(self, nursery: trio.Nursery, duration: float) -> None:
        hosts = self._everyone()
        side = {h for h in hosts if self.rng.random() < 0.5}
        other = set(hosts) - side
        if not side or not other:
            return
        self.log.add(f"partition {sorted(side)} | {sorted(other)} for {duration:.1f}s")
        for a in side:
            for b in other:
                self.cluster.net.block(a, b)
                self.cluster.net.block(b, a)
        await self._heal_after(duration)

    async def _isolate(self, nursery: trio.Nursery, duration: float) -> None:
        victim = self.rng.choice(self._servers())
        self.log.add(f"isolate {victim} for {duration:.1f}s")
        for other in self._everyone():
            if other != victim:
                self.cluster.net.block(victim, other)
                self.cluster.net.block(other, victim)
        await self._heal_after(duration)

    async def _one_way(self, nursery: trio.Nursery, duration: float) -> None:
        src, dst = self.rng.sample(self._servers(), 2)
        self.log.add(f"drop {src} -> {dst} (one way) for {duration:.1f}s")
        self.cluster.net.block(src, dst)
        await self._heal_after(duration)

    async def _heal_after(self, duration: float) -> None:
        await trio.sleep(duration)
        self.cluster.net.heal()
        self.log.add("heal")

    async def _crash(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(sorted(self.cluster.nodes))
        proc = self.cluster.nodes[name]
        self.log.add(f"crash {name}, restart in {duration:.1f}s (data kept)")
        await proc.crash()
        await trio.sleep(duration)
        proc.start(nursery)
        self.log.add(f"restart {name}")

    async def _wipe(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(sorted(self.cluster.nodes))
        proc = self.cluster.nodes[name]
        if not self.healthy():
            # Losing a second copy before the first one lost is rebuilt loses
            # acknowledged writes by design, not by a bug.
            self.log.add(f"(no wipe of {name}: copies are still being rebuilt)")
            return
        self.log.add(f"crash {name}, restart in {duration:.1f}s with its data lost")
        await proc.crash()
        self.cluster.lose_data(name)
        await trio.sleep(duration)
        proc.start(nursery)
        self.log.add(f"restart {name} (empty)")

    async def _crash_coordinator(self, nursery: trio.Nursery, duration: float) -> None:
        proc = self.cluster.coordinators[self.rng.choice(sorted(self.cluster.coordinators))]
        self.log.add(f"crash {proc.name}, restart in {duration:.1f}s (saved state kept)")
        await proc.crash()
        await trio.sleep(duration)
        proc.start(nursery)
        self.log.add(f"restart {proc.name}")

    async def _slow_disk(self, nursery: trio.Nursery, duration: float) -> None:
        delay = self.rng.uniform(0.1, 3.0)
        self.log.add(f"coordinator saves take {delay:.2f}s for {duration:.1f}s")
        self.cluster.disk.delay = delay
        await trio.sleep(duration)
        self.cluster.disk.delay = 0.0

    async def _freeze(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(self._servers())
        self.log.add(f"freeze {name} for {duration:.1f}s")
        self.cluster.net.freeze(name)
        await trio.sleep(duration)
        self.cluster.net.thaw(name)
        self.log.add(f"thaw {name}")

    async def _clock(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(self._servers())
        jump = self.rng.choice((-3600.0, -60.0, -2.0, 2.0, 60.0, 86400.0))
        self.cluster.hosts[name].skew += jump
        self.log.add(f"clock of {name} jumps {jump:+g}s")

    async def _slow(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(self._servers())
        extra = self.rng.uniform(0.05, 1.5)
        self.log.add(f"links of {name} slow by {extra:.2f}s for {duration:.1f}s")
        self.cluster.net.slow[name] = extra
        await self._heal_after(duration)

    async def _reset(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(self._servers())
        self.log.add(f"reset every connection of {name}")
        self.cluster.net.reset_host(name)

    # what an operator does -------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any = None) -> None:
        """One operator request; its answer goes to the log (refusals are normal)."""
        try:
            response = await self.operator.request(method, path, json=body)
            answer = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        self.log.add(f"  {method} {path} {body if body is not None else ''} -> {answer}")

    async def _maintenance(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(sorted(self.cluster.nodes))
        self.log.add(f"maintenance on {name} for {duration:.1f}s")
        await self._call("POST", "/nodes/maintenance", {"nodes": [name], "enabled": True})
        await trio.sleep(duration)
        await self._call("POST", "/nodes/maintenance", {"nodes": [name], "enabled": False})

    async def _evacuate(self, nursery: trio.Nursery, duration: float) -> None:
        name = self.rng.choice(sorted(self.cluster.nodes))
        self.log.add(f"evacuate {name}, back to active in {duration:.1f}s")
        await self._call("POST", f"/nodes/{name}/evacuate")
        await trio.sleep(duration)
        await self._call("POST", "/nodes/maintenance", {"nodes": [name], "enabled": False})

    async def _assign(self, nursery: trio.Nursery, duration: float) -> None:
        shard = self.rng.randrange(self.cluster.shards)
        name = self.rng.choice(sorted(self.cluster.nodes))
        self.log.add(f"move shard {shard} to {name}")
        await self._call("POST", "/shards/assign", {"shard_id": shard, "node_id": name})

    async def _rebalance(self, nursery: trio.Nursery, duration: float) -> None:
        self.log.add("rebalance")
        await self._call("POST", "/rebalance")

    async def _config(self, nursery: trio.Nursery, duration: float) -> None:
        interval = self.rng.choice(("500ms", "2s", "3s"))
        moves = self.rng.randint(1, 4)
        self.log.add(f"config: probe every {interval}, {moves} moves, for {duration:.1f}s")
        change = {"health_check_interval": interval, "max_moves": moves}
        await self._call("PUT", "/cluster/config", change)
        await trio.sleep(duration)
        await self._call("PUT", "/cluster/config", {"health_check_interval": "1s", "max_moves": 2})

    async def heal_all(self, nursery: trio.Nursery) -> None:
        """The end of the run: no partition, nothing frozen, every process up, every
        node active."""
        self.cluster.net.heal()
        self.cluster.disk.delay = 0.0
        for name in sorted(self.cluster.net.frozen):
            self.cluster.net.thaw(name)
        for proc in self.cluster.procs():
            if not proc.running:
                proc.start(nursery)
        self.log.add("heal all")
        nodes = sorted(self.cluster.nodes)
        for _ in range(10):
            try:
                response = await self.operator.post(
                    "/nodes/maintenance", json={"nodes": nodes, "enabled": False}
                )
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await trio.sleep(2.0)
        await self._call("PUT", "/cluster/config", {"health_check_interval": "1s", "max_moves": 2})

    async def aclose(self) -> None:
        await self.operator.aclose()
