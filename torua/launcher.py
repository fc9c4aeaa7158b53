"""``python -m torua up``: a whole local cluster under one nursery.

The coordinator and each node run as child processes (``trio.run_process``),
each in its own session so a terminal's Ctrl-C reaches only this supervisor,
which then stops the nodes first and the coordinator last. Nothing outlives
it: a child that ignores SIGTERM is killed after a grace period.

With ``--coordinators N`` (N > 1) a local etcd starts first and stops last,
the coordinators elect a leader through it, and the nodes get every
coordinator's URL.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import trio

from torua.ha.local_etcd import MISSING_ETCD, etcd_argv, find_etcd, free_port, wait_healthy
from torua.rolling import Restart, RollingRestartFailed, rolling_restart, up_file, write_up_file
from torua.supervise import STOP_GRACE, stop_child
from torua.up_settings import (
    UpSettings,
    check_children,
    children_env,
    coordinator_argv,
    node_argv,
)

__all__ = ["UpSettings", "run_up"]

log = logging.getLogger(__name__)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As hypercorn binds: TIME_WAIT leftovers of a previous run do not count as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _wait_ready(
    client: httpx.AsyncClient, url: str, expected_nodes: int, replicas: int
) -> dict:
    """Until every node is registered and healthy and every shard has its copies."""
    wanted = "green" if expected_nodes >= replicas else "yellow"
    while True:
        try:
            nodes = (await client.get(f"{url}/nodes")).json()["nodes"]
            if len(nodes) >= expected_nodes and all(n["status"] == "healthy" for n in nodes):
                info = (await client.get(f"{url}/cluster/info")).json()
                if info["cluster_state"] == wanted:
                    return info
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        await trio.sleep(0.1)


async def _stop(
    process: trio.Process, name: str, grace: float = STOP_GRACE, signum: int = signal.SIGINT
) -> None:
    """SIGINT: stop without draining. The whole cluster is stopping, so there is
    nowhere to drain to; every copy stays on disk for the next ``up``. (A node
    restarted on its own gets SIGTERM: it tells the coordinator it stops.)"""
    _, killed = await stop_child(process, signum=signum, grace=grace)
    if killed:
        log.warning("%s did not stop within %.0fs; it was killed", name, grace)


async def run_up(settings: UpSettings) -> int:
    """The exit status; raises ConfigError (exit 2) before starting anything if a
    child would refuse its settings."""
    count = settings.coordinators
    ports = [settings.port + i for i in range(settings.nodes + count)]
    token = settings.token or secrets.token_urlsafe(24)
    coordinator_urls = [f"http://127.0.0.1:{p}" for p in ports[:count]]
    env = children_env(settings, os.environ, token=token)
    check_children(settings, env, coordinator_urls)
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        print(f"torua up: ports {busy} are in use; pick another --port", file=sys.stderr)
        return 1
    etcd = find_etcd() if count > 1 else None
    if count > 1 and etcd is None:
        print(f"torua up: {MISSING_ETCD}", file=sys.stderr)
        return 1
    node_ports = ports[count:]
    url = coordinator_urls[0]
    python = [sys.executable, "-m", "torua"]
    children: list[tuple[str, trio.Process]] = []
    node_argvs: dict[str, list[str]] = {}
    marker = up_file(url)
    scratch_dir = tempfile.TemporaryDirectory(prefix="torua-up-")  # etcd's home with --memory
    scratch = Path(scratch_dir.name)

    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        # A child that exits while the cluster starts (a setting it refuses, a port
        # taken meanwhile) ends the start-up at once: nothing would ever answer.
        startup = trio.CancelScope()
        exited: list[tuple[str, int]] = []

        async def run_child(
            name: str, argv: list[str], task_status: trio.TaskStatus[trio.Process]
        ) -> None:
            result = await trio.run_process(
                argv if name == "etcd" else python + argv,
                env=env,
                check=False,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # etcd logs to stderr on every hiccup; the terminal belongs to Torua.
                stderr=subprocess.DEVNULL if name == "etcd" else None,
                task_status=task_status,
            )
            if status is None:
                exited.append((name, result.returncode))
                startup.cancel(reason=f"{name} exited")

        async def start(name: str, argv: list[str]) -> trio.Process:
            process: trio.Process = await nursery.start(run_child, name, argv)
            children.append((name, process))
            return process

        async def restart_node(name: str) -> None:
            """SIGTERM (the node says it stops, and keeps its copies), then start it again."""
            index = next(i for i, (n, _) in enumerate(children) if n == name)
            await _stop(children[index][1], name, signum=signal.SIGTERM)
            process: trio.Process = await nursery.start(run_child, name, node_argvs[name])
            children[index] = (name, process)

        rolling = RollingState(marker, url, token)

        async def watch_signals(task_status: trio.TaskStatus[None]) -> None:
            signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            with trio.open_signal_receiver(*signums) as signals:
                task_status.started()
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        if status == 0 and not rolling.running:
                            nursery.start_soon(rolling.run, restart_node)
                        continue
                    print(f"\n{signal.Signals(signum).name}: stopping the cluster", flush=True)
                    stop.set()

        status: int | None = None  # 0 once the cluster is ready
        await nursery.start(watch_signals)
        # Starting up can be interrupted too: a signal cancels this scope at once.
        with startup, _StartFailed.caught():
            nursery.start_soon(_cancel_when_set, stop, startup)
            if etcd is not None:
                etcd_url = await _start_etcd(start, etcd, settings, scratch)
                if etcd_url is None:
                    raise _StartFailed
                env["TORUA_ETCD_ENDPOINTS"] = etcd_url
            for i, coordinator_url in enumerate(coordinator_urls):
                await start(
                    "coordinator" if count == 1 else f"coordinator{i + 1}",
                    coordinator_argv(settings, coordinator_url),
                )
            # Nodes start once the coordinator answers, so none logs a failed registration.
            async with httpx.AsyncClient(timeout=1.0) as probe:
                with trio.move_on_after(settings.ready_timeout):
                    while not await _answers(probe, f"{url}/health"):  # noqa: ASYNC110
                        await trio.sleep(0.05)
            for i, port in enumerate(node_ports, start=1):
                node_argvs[f"n{i}"] = node_argv(settings, i, port, coordinator_urls)
                await start(f"n{i}", node_argvs[f"n{i}"])
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=headers, timeout=5.0) as client:
                with trio.move_on_after(settings.ready_timeout) as waiting:
                    info = await _wait_ready(client, url, settings.nodes, settings.replicas)
            if waiting.cancelled_caught:
                print(
                    f"torua up: the cluster was not ready within {settings.ready_timeout:.0f}s",
                    file=sys.stderr,
                )
            else:
                _print_ready(coordinator_urls, token, node_ports, info)
                rolling.write()
                status = 0
        if status is None:
            status = _exit_status(exited)
        if status == 0:
            await stop.wait()
        rolling.scope.cancel(reason="the cluster stops")
        for name, process in reversed(children):
            await _stop(process, name)
        nursery.cancel_scope.cancel()
    marker.unlink(missing_ok=True)
    scratch_dir.cleanup()
    return status


class RollingState:
    """``up``'s rolling restarts (on SIGHUP), with their progress in the up file
    that ``torua rolling-restart`` reads."""

    def __init__(self, marker: Path, url: str, token: str) -> None:
        self.marker, self.url, self.token = marker, url, token
        self.running = False
        self.scope = trio.CancelScope()
        self.last: dict[str, object] | None = None

    def write(self) -> None:
        write_up_file(
            self.marker, {"pid": os.getpid(), "coordinator": self.url, "rolling": self.last}
        )

    async def run(self, restart: Restart) -> None:
        self.running = True
        self.last = {"state": "running", "started": time.time(), "restarted": [], "error": None}
        self.write()
        print("SIGHUP: rolling restart of the nodes", flush=True)

        def report(line: str) -> None:
            print(f"rolling restart: {line}", flush=True)

        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            with self.scope:
                async with httpx.AsyncClient(
                    base_url=self.url, headers=headers, timeout=10.0
                ) as http:
                    done = await rolling_restart(http, restart, report=report)
                self.last.update(state="done", restarted=done)
        except (RollingRestartFailed, httpx.HTTPError) as exc:
            self.last.update(state="failed", error=str(exc) or type(exc).__name__)
            print(f"rolling restart failed: {self.last['error']}", flush=True)
        finally:
            self.running = False
            self.scope = trio.CancelScope()
            self.write()


def _exit_status(exited: list[tuple[str, int]]) -> int:
    """Start-up failed: 2 if a child refused a setting (it printed the one line)."""
    if not exited:
        return 1
    name, code = exited[0]
    if code == 2:
        return 2
    print(f"torua up: {name} exited with status {code} while starting", file=sys.stderr)
    return 1


class _StartFailed(Exception):
    """Start-up cannot go on (the reason is already printed); stop what started."""

    @staticmethod
    @contextmanager
    def caught() -> Iterator[None]:
        try:
            yield
        except _StartFailed:
            pass


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel(reason="stop requested")


def _print_ready(coordinators: list[str], token: str, ports: list[int], info: dict) -> None:
    print(f"READY {coordinators[0]}", flush=True)
    names = (
        ["coordinator"]
        if len(coordinators) == 1
        else [f"coordinator{i}" for i in range(1, len(coordinators) + 1)]
    )
    rows = list(zip(names, coordinators, strict=True)) + [
        (f"n{i}", f"http://127.0.0.1:{port}") for i, port in enumerate(ports, start=1)
    ]
    width = max(len(name) for name, _ in rows)
    for name, address in rows:
        print(f"  {name:<{width}}  {address}")
    print(f"  {'token':<{width}}  {token}")
    if info.get("epoch"):  # several coordinators
        print(f"  {'leader':<{width}}  {info['leader']} (epoch {info.get('epoch')})")
    print(
        f"  {'cluster':<{width}}  {info.get('cluster_state')} "
        f"({info.get('healthy_nodes')} healthy nodes, {info.get('total_shards')} shards)"
    )
    print("Ctrl-C stops the cluster.", flush=True)


async def _start_etcd(start, binary: str, settings: UpSettings, scratch: Path) -> str | None:  # type: ignore[no-untyped-def]
    """Start the local etcd (its data under DATA_DIR/etcd); its URL once it answers."""
    data = scratch / "etcd" if settings.memory else Path(settings.data_dir) / "etcd"
    data.parent.mkdir(parents=True, exist_ok=True)
    client_port, peer_port = free_port(), free_port()
    await start("etcd", etcd_argv(binary, data, client_port, peer_port))
    etcd_url = f"http://127.0.0.1:{client_port}"
    if not await wait_healthy(etcd_url, within=settings.ready_timeout):
        print(f"torua up: etcd at {etcd_url} did not become healthy", file=sys.stderr)
        return None
    return etcd_url
