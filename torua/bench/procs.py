"""Start real Torua processes on loopback for the benchmarks, and reap them.

Every process is started by pid with its stdout and stderr in files under a
work directory (no pipe can fill up and stall it), and stopped by pid when the
:class:`Procs` group closes: SIGCONT (a benchmark may have suspended it), then
SIGINT (a node stops without draining), then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from torua.supervise import stop_children

__all__ = ["Cluster", "CpuMeter", "Proc", "Procs", "RssSampler", "wait_for"]

READY_WITHIN = 60.0  # seconds; 20 nodes starting together on 2 cores take a while


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def suspend(self) -> None:
        psutil.Process(self.pid).suspend()

    def resume(self) -> None:
        try:
            psutil.Process(self.pid).resume()
        except psutil.NoSuchProcess:
            pass

    def stderr_tail(self, lines: int = 5) -> list[str]:
        try:
            text = self.stderr.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def problems(self, keep: int = 3) -> dict[str, Any]:
        """ERROR and Traceback lines the process logged so far: a count and the last few."""
        try:
            lines = self.stderr.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        bad = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
        return {"count": len(bad), "last": bad[-keep:]} if bad else {}


def wait_for(predicate: Callable[[], Any], *, within: float, every: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = predicate()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


class Procs:
    """A group of child processes, all stopped and reaped by pid on close."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = {**os.environ, **env}
        self.env.pop("TORUA_TOKEN", None)  # loopback needs none
        self.procs: list[Proc] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def launch(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        command: list[str] | None = None,
    ) -> Proc:
        """Start ``python -m torua ARGV``, or ``command`` for another program (etcd)."""
        out, err = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            popen = subprocess.Popen(
                command or [sys.executable, "-m", "torua", *argv],
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C of the bench reaches us, not them
            )
        proc = Proc(name, popen, out, err)
        self.procs.append(proc)
        return proc

    def wait_ready(self, procs: Iterable[Proc], within: float = READY_WITHIN) -> None:
        """Wait for each process's ``READY <url>`` line; raise if one exits or times out."""
        pending = [p for p in procs if not p.url]
        deadline = time.monotonic() + within
        while pending:
            for proc in list(pending):
                for line in proc.stdout.read_text(errors="replace").splitlines():
                    if line.startswith("READY "):
                        proc.url = line.split(" ", 1)[1].strip()
                        pending.remove(proc)
                        break
                else:
                    if proc.popen.poll() is not None:
                        raise RuntimeError(
                            f"{proc.name} exited with {proc.popen.returncode} "
                            f"before READY: {proc.stderr_tail()}"
                        )
            if pending and time.monotonic() >= deadline:
                raise RuntimeError(
                    f"not READY within {within:.0f}s: {', '.join(p.name for p in pending)}"
                )
            if pending:
                time.sleep(0.05)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGCONT + SIGINT every live process, then SIGKILL what is left; reap all."""
        stop_children([p.popen for p in self.procs], signum=signal.SIGINT, grace=grace)
        self.procs = [p for p in self.procs if p.popen.poll() is None]


class RssSampler:
    """Samples the RSS of some processes in a thread; keeps each one's peak (bytes)."""

    def __init__(self, procs: dict[str, int], every: float = 0.2) -> None:
        self._pids = procs
        self._every = every
        self.peak: dict[str, int] = dict.fromkeys(procs, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        for name, pid in self._pids.items():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            self.peak[name] = max(self.peak[name], rss)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


class CpuMeter:
    """CPU cores used over a span by some processes, by reaped children (wrk), and by the rest.

    ``other`` is the whole machine's busy time minus ours: load from outside the
    benchmark (another job on a shared machine), which makes a run less reliable.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self.cores: dict[str, float] = {}

    @staticmethod
    def _machine() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def _procs(self) -> dict[str, float]:
        busy = {}
        for name, pid in [*self._pids.items(), ("bench", os.getpid())]:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            busy[name] = t.user + t.system
        return busy

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), self._machine(), self._children(), self._procs())
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall0, machine0, children0, procs0 = self._start
        wall = time.perf_counter() - wall0
        procs = {k: (v - procs0[k]) / wall for k, v in self._procs().items() if k in procs0}
        wrk = (self._children() - children0) / wall
        machine = (self._machine() - machine0) / wall
        self.cores = {k: round(v, 2) for k, v in procs.items()}
        self.cores["wrk"] = round(wrk, 2)
        self.cores["other"] = round(max(0.0, machine - wrk - sum(procs.values())), 2)


@dataclass
class Cluster:
    """A coordinator and nodes started as separate processes; ``http`` talks to the coordinator."""

    procs: Procs
    coordinator: Proc
    nodes: list[Proc] = field(default_factory=list)
    http: httpx.Client = field(init=False)

    @classmethod
    def start(
        cls,
        procs: Procs,
        *,
        nodes: int,
        coordinator_env: dict[str, str] | None = None,
        node_args: list[str] | None = None,
    ) -> Cluster:
        coordinator = procs.launch(
            "coordinator", ["coordinator", "--listen", "127.0.0.1:0"], coordinator_env
        )
        procs.wait_ready([coordinator])
        cluster = cls(procs, coordinator)
        width = len(str(nodes))
        for i in range(1, nodes + 1):
            name = f"n{i:0{width}d}"
            cluster.nodes.append(
                procs.launch(
                    name,
                    [
                        "node",
                        "--id",
                        name,
                        "--listen",
                        "127.0.0.1:0",
                        "--coordinator",
                        coordinator.url,
                        *(node_args or []),
                    ],
                )
            )
        procs.wait_ready(cluster.nodes)
        return cluster

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.coordinator.url, timeout=5.0, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def nodes_by_id(self) -> dict[str, dict[str, Any]]:
        return {n["id"]: n for n in self.http.get("/nodes").json()["nodes"]}

    def wait_settled(self, *, within: float, green: bool = True) -> bool:
        """Every node registered and healthy, every shard assigned (and green if asked)."""
        count = len(self.nodes)

        def settled() -> bool:
            nodes = self.nodes_by_id()
            info = self.http.get("/cluster/info").json()
            return (
                len(nodes) == count
                and all(n["status"] == "healthy" for n in nodes.values())
                and info["assigned_shards"] == info["total_shards"]
                and (not green or info["cluster_state"] == "green")
            )

        return bool(wait_for(settled, within=within, every=0.2))

    def pids(self) -> dict[str, int]:
        return {"coordinator": self.coordinator.pid, **{n.name: n.pid for n in self.nodes}}
