"""The seeded nemesis: one fault at a time, each undone before the next.

Every choice (fault kind, target, durations) comes from one ``random.Random``
so a seed names a fault schedule; the cluster's timing still varies run to run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx
import trio

from .cluster import Cluster

__all__ = ["FAULT_KINDS", "Fault", "Nemesis"]

FAULT_KINDS = (
    "pause-node",
    "pause-coordinator",
    "kill-node",
    "kill-coordinator",
    "clock-back",
    "clock-forward",
    "rebalance",
    "drain-restart",
    "maintenance",
)
ADMIN_TIMEOUT = 60.0


@dataclass(slots=True)
class Fault:
    kind: str
    target: str
    start: float
    end: float = 0.0
    detail: str = ""

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"[{self.start:6.1f}-{self.end:6.1f}] {self.kind} {self.target}{extra}"


@dataclass
class Nemesis:
    cluster: Cluster
    rng: random.Random
    kinds: tuple[str, ...] = FAULT_KINDS
    origin: float = 0.0  # fault times are seconds since then, like the history's
    faults: list[Fault] = field(default_factory=list)

    async def run(self, until: float) -> None:
        """Inject faults until the monotonic deadline ``until``."""
        async with httpx.AsyncClient(
            base_url=self.cluster.url, timeout=ADMIN_TIMEOUT, trust_env=False
        ) as http:
            while trio.current_time() < until:
                await trio.sleep(self.rng.uniform(1.0, 3.0))
                if trio.current_time() >= until:
                    return
                await self.inject(http, self.rng.choice(self.kinds))

    async def inject(self, http: httpx.AsyncClient, kind: str) -> None:
        node = self.rng.choice(sorted(self.cluster.nodes))
        target = "coordinator" if kind.endswith("coordinator") or "clock" in kind else node
        fault = Fault(kind, target, trio.current_time() - self.origin)
        self.faults.append(fault)
        try:
            await getattr(self, kind.replace("-", "_"))(http, fault)
        except httpx.HTTPError as exc:
            fault.detail += f" {type(exc).__name__}"
        except AssertionError as exc:  # a restart printed no READY line; heal retries
            fault.detail += f" restart failed: {str(exc)[:80]}"
        finally:
            fault.end = trio.current_time() - self.origin

    async def pause_node(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._pause(fault)

    async def pause_coordinator(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._pause(fault)

    async def _pause(self, fault: Fault) -> None:
        seconds = self.rng.uniform(0.5, 5.0)
        fault.detail = f"SIGSTOP {seconds:.1f}s"
        self.cluster.pause(fault.target)
        await trio.sleep(seconds)
        self.cluster.resume(fault.target)

    async def kill_node(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._kill(fault)

    async def kill_coordinator(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._kill(fault)

    async def _kill(self, fault: Fault) -> None:
        down = self.rng.uniform(0.2, 3.0)
        fault.detail = f"SIGKILL, down {down:.1f}s"
        await self.cluster.kill(fault.target)
        await trio.sleep(down)
        clock = self.cluster.clock if fault.target == "coordinator" else None
        await self.cluster.restart(fault.target, clock)

    async def clock_back(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._clock(fault, -self.rng.choice([5, 30, 120, 600]))

    async def clock_forward(self, _: httpx.AsyncClient, fault: Fault) -> None:
        await self._clock(fault, self.rng.choice([5, 30, 300, 3600]))

    async def _clock(self, fault: Fault, jump: int) -> None:
        """Restart the coordinator with its wall clock ``jump`` seconds away
        from the previous incarnation's."""
        previous = self.cluster.clock or 0
        offset = previous + jump
        if self.rng.random() < 0.5:
            await self.cluster.kill("coordinator")
            how = "SIGKILL"
        else:
            await self.cluster.stop("coordinator")
            how = "SIGINT"
        await self.cluster.restart("coordinator", offset)
        fault.detail = f"{how}, wall clock {jump:+d}s (offset {previous:+d}s -> {offset:+d}s)"

    async def rebalance(self, http: httpx.AsyncClient, fault: Fault) -> None:
        fault.target = ""
        response = await http.post("/rebalance")
        fault.detail = f"HTTP {response.status_code}"

    async def drain_restart(self, http: httpx.AsyncClient, fault: Fault) -> None:
        """Drain a node, restart it, and make it active again."""
        response = await http.post(f"/nodes/{fault.target}/drain")
        fault.detail = f"drain HTTP {response.status_code}"
        await self.cluster.stop(fault.target)
        await self.cluster.restart(fault.target)
        await self._set_maintenance(http, fault, False)

    async def maintenance(self, http: httpx.AsyncClient, fault: Fault) -> None:
        seconds = self.rng.uniform(1.0, 6.0)
        await self._set_maintenance(http, fault, True)
        await trio.sleep(seconds)
        await self._set_maintenance(http, fault, False)
        fault.detail += f", {seconds:.1f}s"

    async def _set_maintenance(self, http: httpx.AsyncClient, fault: Fault, on: bool) -> None:
        body = {"nodes": [fault.target], "enabled": on}
        response = await http.post("/nodes/maintenance", json=body)
        fault.detail += (
            f"{', ' if fault.detail else ''}maintenance {on} HTTP {response.status_code}"
        )
