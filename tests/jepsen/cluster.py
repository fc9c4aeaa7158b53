"""The cluster under test: one coordinator on a fixed port and N nodes, all real
processes tracked by :class:`tests.procs.ProcessGroup`, restartable on the
same data directory (and, for the coordinator, under a shifted wall clock).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import trio

from torua.ha.local_etcd import free_port

from ..procs import Proc, ProcessGroup

__all__ = ["FAKETIME_LIB", "Cluster", "ClusterOptions"]

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    nodes: int = 3
    replicas: int = 2
    memory: bool = False


@dataclass
class Cluster:
    """Start, stop and restart the processes; knows which are paused or dead."""

    group: ProcessGroup
    workdir: Path
    options: ClusterOptions
    port: int = field(default_factory=free_port)
    coordinator: Proc | None = None
    nodes: dict[str, Proc] = field(default_factory=dict)
    paused: set[int] = field(default_factory=set)
    clock: int | None = None  # the coordinator's wall-clock offset in seconds; None: real

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "HEALTH_CHECK_INTERVAL": "1s",
            "HEALTH_CHECK_TIMEOUT": "500ms",
            "TORUA_REPLICATION_FACTOR": str(self.options.replicas),
        }

    def _data_dir(self) -> Path | None:
        return None if self.options.memory else self.workdir / "data"

    async def start(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        await self.start_coordinator()
        for i in range(1, self.options.nodes + 1):
            await self.start_node(f"n{i}")

    async def start_coordinator(self, clock: int | None = None) -> None:
        """``clock`` is a wall-clock offset in seconds, applied by libfaketime:
        the wall clock jumps while monotonic time stays real, as after an NTP step."""
        env = self.env()
        if clock is not None:
            env |= {
                "LD_PRELOAD": str(FAKETIME_LIB),
                "FAKETIME": f"{clock:+d}s",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
        # The coordinator keeps its state (the shard table) on disk even with
        # --memory nodes: restarts must find the same cluster.
        self.coordinator = await self.group.start(
            "coordinator",
            ["coordinator", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.workdir)],
            env,
            stderr_to=self.workdir / "coordinator.log",
        )
        self.clock = clock

    async def start_node(self, node_id: str) -> None:
        args = ["node", "--id", node_id, "--listen", "127.0.0.1:0", "--coordinator", self.url]
        data_dir = self._data_dir()
        keep = ["--memory"] if data_dir is None else ["--data-dir", str(data_dir)]
        self.nodes[node_id] = await self.group.start(
            node_id, [*args, *keep], self.env(), stderr_to=self.workdir / f"{node_id}.log"
        )

    def proc(self, name: str) -> Proc:
        if name == "coordinator":
            assert self.coordinator is not None
            return self.coordinator
        return self.nodes[name]

    def pause(self, name: str) -> None:
        proc = self.proc(name)
        proc.suspend()
        self.paused.add(proc.pid)

    def resume(self, name: str) -> None:
        proc = self.proc(name)
        self.paused.discard(proc.pid)
        _resume(proc)

    async def kill(self, name: str) -> None:
        proc = self.proc(name)
        self.paused.discard(proc.pid)
        proc.kill()
        await proc.wait()

    async def stop(self, name: str) -> None:
        """A graceful stop (SIGINT: a node leaves without draining)."""
        proc = self.proc(name)
        self.paused.discard(proc.pid)
        await self.group.stop(proc, signum=signal.SIGINT)

    async def restart(self, name: str, clock: int | None = None) -> None:
        if name == "coordinator":
            await self.start_coordinator(clock)
        else:
            await self.start_node(name)

    def dead(self) -> list[str]:
        names = ["coordinator", *self.nodes]
        return [n for n in names if self.proc(n).process.returncode is not None]

    async def heal(self) -> None:
        """Resume everything paused and restart everything dead."""
        for name in ["coordinator", *self.nodes]:
            if self.proc(name).pid in self.paused:
                self.resume(name)
        for name in self.dead():
            await self.restart(name, self.clock if name == "coordinator" else None)

    async def green(self, http: httpx.AsyncClient) -> bool:
        """Every node healthy and active, every shard active and fully copied."""
        try:
            info = (await http.get(f"{self.url}/cluster/info")).json()
            shards = (await http.get(f"{self.url}/shards")).json()["shards"]
            nodes = (await http.get(f"{self.url}/nodes")).json()["nodes"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return (
            info.get("cluster_state") == "green"
            and all(s["state"] == "active" for s in shards)
            and len(nodes) == len(self.nodes)
            and all(n["status"] == "healthy" and n.get("mode") == "active" for n in nodes)
        )

    async def wait_green(self, http: httpx.AsyncClient, within: float) -> bool:
        with trio.move_on_after(within):
            while True:
                if await self.green(http):
                    return True
                await trio.sleep(0.25)
        return False


def _resume(proc: Proc) -> None:
    try:
        proc.resume()
    except psutil.NoSuchProcess:
        pass
