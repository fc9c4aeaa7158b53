"""The seeded nemesis: one fault at a time, drawn from the seed, each undone.

Faults: partitions (halves, one host cut off, one direction only), node
crashes with restart (data kept), freezes (SIGSTOP/SIGCONT), wall-clock jumps,
slow links and dropped connections. Every decision comes from the nemesis's
own random source, so the fault log of a seed is the same on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from .cluster import CLIENT, COORDINATOR, SimCluster

__all__ = ["FaultLog", "Nemesis"]

FAULTS = (
    ("partition", 3),
    ("isolate", 3),
    ("one_way", 2),
    ("crash", 4),
    ("freeze", 3),
    ("clock", 2),
    ("slow", 2),
    ("reset", 2),
)


@dataclass
class FaultLog:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(f"{trio.current_time():9.3f}  {text}")


class Nemesis:
    def __init__(self, cluster: SimCluster, rng: random.Random, log: FaultLog) -> None:
        self.cluster = cluster
        self.rng = rng
        self.log = log
        self._undo: list[tuple[str, object]] = []

    def _servers(self) -> list[str]:
        return [COORDINATOR, *self.cluster.nodes]

    async def run(self, nursery: trio.Nursery, until: float) -> None:
        kinds = [k for k, _ in FAULTS]
        weights = [w for _, w in FAULTS]
        while True:
            await trio.sleep(self.rng.uniform(0.5, 4.0))
            if trio.current_time() >= until:
                return
            kind = self.rng.choices(kinds, weights)[0]
            duration = self.rng.uniform(1.0, 12.0)
            await getattr(self, f"_{kind}")(nursery, duration)

    async def _partition(self, nursery: trio.Nursery, duration: float) -> None:
        hosts = [*self._servers(), CLIENT]
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
        for other in [*self._servers(), CLIENT]:
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

    async def heal_all(self, nursery: trio.Nursery) -> None:
        """The end of the run: no partition, nothing frozen, every process up."""
        self.cluster.net.heal()
        for name in sorted(self.cluster.net.frozen):
            self.cluster.net.thaw(name)
        for proc in self.cluster.procs():
            if not proc.running:
                proc.start(nursery)
        self.log.add("heal all")
