"""Start real Torua processes on loopback for process-level tests, and reap them.

Every process is tracked by pid and stopped when the group closes: SIGCONT
first (a test may have suspended it), then SIGTERM, then SIGKILL after a grace
period. Tests then assert nothing of theirs is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from torua.ha.local_etcd import MISSING_ETCD, etcd_argv, find_etcd, free_port
from torua.supervise import stop_child

__all__ = ["Proc", "ProcessGroup", "needs_etcd", "stop_up", "wait_until"]

# Tests that start etcd skip on a machine without it, except in CI (.ci/run installs it).
needs_etcd = pytest.mark.skipif(
    find_etcd() is None and not os.environ.get("CI"),
    reason="etcd is not installed (apt-get install etcd-server); CI installs it",
)


@dataclass
class Proc:
    name: str
    process: trio.Process
    url: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def suspend(self) -> None:
        psutil.Process(self.pid).suspend()

    def resume(self) -> None:
        psutil.Process(self.pid).resume()

    def kill(self) -> None:
        psutil.Process(self.pid).kill()

    async def wait(self) -> int:
        return await self.process.wait()


async def wait_until(predicate, *, within: float, every: float = 0.1, what: str = "condition"):
    """Poll an async predicate until it returns a truthy value; fail after ``within`` s."""
    with trio.move_on_after(within):
        while True:
            result = await predicate()
            if result:
                return result
            await trio.sleep(every)
    raise AssertionError(f"{what} not reached within {within}s")


class ProcessGroup:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "TORUA_LOG_LEVEL": "INFO", **(env or {})}
        self.env.pop("TORUA_TOKEN", None)
        self.procs: list[Proc] = []
        self.pids: set[int] = set()

    async def __aenter__(self) -> ProcessGroup:
        self._nursery_manager = trio.open_nursery()
        self.nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        try:
            with trio.CancelScope(shield=True):
                await self.stop_all()
        finally:
            self.nursery.cancel_scope.cancel()
            result = await self._nursery_manager.__aexit__(*exc_info)
        return result

    async def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        ready_within: float = 20.0,
        stderr_to: Path | None = None,
        command: list[str] | None = None,
        ready_url: str | None = None,
    ) -> Proc:
        """Start ``python -m torua ARGV`` (or ``command``); ready at its READY line,
        or once ``ready_url`` answers 200 for programs that print none."""
        full_env = {**self.env, **(env or {})}
        # Opened once, before the child starts; not worth a thread hop.
        stderr = open(stderr_to, "ab") if stderr_to is not None else None  # noqa: SIM115, ASYNC230
        try:
            process: trio.Process = await self.nursery.start(
                lambda task_status: trio.run_process(  # noqa: ASYNC105 (nursery.start awaits it)
                    command or [sys.executable, "-m", "torua", *argv],
                    env=full_env,
                    check=False,
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                    task_status=task_status,
                )
            )
        finally:
            if stderr is not None:
                stderr.close()
        proc = Proc(name, process)
        self.procs.append(proc)
        self.pids.add(process.pid)
        ready = trio.Event()

        async def pump() -> None:
            buffer = b""
            assert process.stdout is not None
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    proc.output.append(line)
                    if line.startswith("READY ") and not ready.is_set():
                        proc.url = line.split(" ", 1)[1].strip()
                        ready.set()

        async def exited() -> None:
            await process.wait()
            ready.set()

        async def answers() -> None:
            assert ready_url is not None
            async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
                while True:
                    try:
                        if (await client.get(ready_url)).status_code == 200:
                            proc.url = ready_url.rsplit("/", 1)[0]
                            ready.set()
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.1)

        self.nursery.start_soon(pump)
        async with trio.open_nursery() as waiting:
            waiting.start_soon(exited)
            if ready_url is not None:
                waiting.start_soon(answers)
            with trio.move_on_after(ready_within):
                await ready.wait()
            waiting.cancel_scope.cancel()
        if not proc.url:
            raise AssertionError(
                f"{name} printed no READY line (exit status {process.returncode}); "
                f"output: {proc.output[-5:]}"
            )
        return proc

    async def coordinator(
        self,
        env: dict[str, str] | None = None,
        *args: str,
        data_dir: Path | None = None,
        port: int = 0,
    ) -> Proc:
        """In memory, or durable under ``data_dir``."""
        listen = ["--listen", f"127.0.0.1:{port}"]
        return await self.start(
            "coordinator", ["coordinator", *listen, *_keep(data_dir), *args], env
        )

    async def etcd(self, data_dir: Path, client_port: int = 0, peer_port: int = 0) -> Proc:
        """A one-member etcd on loopback (the same data dir and ports restart it)."""
        binary = find_etcd()
        assert binary is not None, MISSING_ETCD
        client_port, peer_port = client_port or free_port(), peer_port or free_port()
        argv = etcd_argv(binary, data_dir, client_port, peer_port)
        return await self.start(
            "etcd",
            [],
            command=argv,
            ready_url=f"http://127.0.0.1:{client_port}/health",
            stderr_to=data_dir.parent / "etcd.log",
        )

    async def node(
        self,
        node_id: str,
        coordinator: str,
        env: dict[str, str] | None = None,
        *args: str,
        data_dir: Path | None = None,
    ) -> Proc:
        """In memory, or durable under ``data_dir`` (then it keeps its data across restarts)."""
        argv = ["node", "--id", node_id, "--listen", "127.0.0.1:0", "--coordinator", coordinator]
        return await self.start(node_id, [*argv, *_keep(data_dir), *args], env)

    async def stop(self, proc: Proc, grace: float = 10.0, signum: int = signal.SIGINT) -> int:
        """SIGINT by default: a node stops without draining (SIGTERM would drain it)."""
        status, _ = await stop_child(proc.process, signum=signum, grace=grace)
        return status

    async def stop_all(self) -> None:
        for proc in reversed(self.procs):
            await self.stop(proc)
        for pid in self.pids:
            assert not _alive(pid), f"process {pid} outlived its test"
        # No listening socket of ours may be left either.
        ports = {int(p.url.rsplit(":", 1)[1]) for p in self.procs if p.url}
        listening = {
            c.laddr.port
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
        }
        assert not listening, f"ports still listening after the test: {sorted(listening)}"


def _keep(data_dir: Path | None) -> list[str]:
    return ["--memory"] if data_dir is None else ["--data-dir", str(data_dir)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def get_json(url: str, path: str) -> dict:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(url + path)
        response.raise_for_status()
        return response.json()


async def stop_up(proc: Proc, *, children: int | None = None) -> None:
    """SIGTERM an ``up`` supervisor: it must exit 0 and leave none of its children."""
    pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    if children is not None:
        assert len(pids) == children, f"up runs {len(pids)} children, not {children}"
    proc.process.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        assert await proc.wait() == 0
    assert not [p for p in pids if _alive(p)], "children of up outlived it"
