"""``python -m torua up``: a whole local cluster under one nursery.

The coordinator and each node run as child processes (``trio.run_process``),
each in its own session so a terminal's Ctrl-C reaches only this supervisor,
which then stops the nodes first and the coordinator last. Nothing outlives
it: a child that ignores SIGTERM is killed after a grace period.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field

import httpx
import trio

from torua.errors import ConfigError

__all__ = ["UpSettings", "run_up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpSettings:
    nodes: int = 3
    port: int = 8080
    shards: int = 16
    replicas: int = 2
    data_dir: str = "./.torua"
    memory: bool = False
    token: str | None = None
    ready_timeout: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 64:
            raise ConfigError(f"--nodes={self.nodes} must be between 1 and 64")
        if not 1 <= self.port <= 65535 - self.nodes:
            raise ConfigError(f"--port={self.port} leaves no room for {self.nodes} node ports")


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


async def _stop(process: trio.Process, name: str, grace: float = 10.0) -> None:
    """SIGINT: stop without draining. The whole cluster is stopping, so there is
    nowhere to drain to; every copy stays on disk for the next ``up``."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    with trio.move_on_after(grace):
        await process.wait()
        return
    log.warning("%s did not stop within %.0fs; killing it", name, grace)
    process.kill()
    await process.wait()


async def run_up(settings: UpSettings) -> int:
    ports = [settings.port + i for i in range(settings.nodes + 1)]
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        print(f"torua up: ports {busy} are in use; pick another --port", file=sys.stderr)
        return 1
    token = settings.token or secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{settings.port}"
    env = {**os.environ, **settings.extra_env, "TORUA_TOKEN": token}
    env.setdefault("TORUA_LOG_LEVEL", "WARNING")
    common = ["--data-dir", settings.data_dir] + (["--memory"] if settings.memory else [])
    python = [sys.executable, "-m", "torua"]
    children: list[tuple[str, trio.Process]] = []

    async with trio.open_nursery() as nursery:

        async def start(name: str, argv: list[str]) -> trio.Process:
            process: trio.Process = await nursery.start(
                lambda task_status: trio.run_process(  # noqa: ASYNC105 (nursery.start awaits it)
                    python + argv,
                    env=env,
                    check=False,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    task_status=task_status,
                )
            )
            children.append((name, process))
            return process

        stop = trio.Event()

        async def watch_signals(task_status: trio.TaskStatus[None]) -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    print(f"\n{signal.Signals(signum).name}: stopping the cluster", flush=True)
                    stop.set()

        await nursery.start(watch_signals)
        status = 1
        # Starting up can be interrupted too: a signal cancels this scope at once.
        with trio.CancelScope() as startup:
            nursery.start_soon(_cancel_when_set, stop, startup)
            await start(
                "coordinator",
                [
                    "coordinator",
                    "--listen",
                    f"127.0.0.1:{settings.port}",
                    "--shards",
                    str(settings.shards),
                    "--replicas",
                    str(settings.replicas),
                    *common,
                ],
            )
            # Nodes start once the coordinator answers, so none logs a failed registration.
            async with httpx.AsyncClient(timeout=1.0) as probe:
                with trio.move_on_after(settings.ready_timeout):
                    while not await _answers(probe, f"{url}/health"):  # noqa: ASYNC110
                        await trio.sleep(0.05)
            for i, port in enumerate(ports[1:], start=1):
                await start(
                    f"n{i}",
                    [
                        "node",
                        "--id",
                        f"n{i}",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--coordinator",
                        url,
                        *common,
                    ],
                )
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
                _print_ready(url, token, ports, info)
                status = 0
        if status == 0:
            await stop.wait()
        for name, process in reversed(children):
            await _stop(process, name)
        nursery.cancel_scope.cancel()
    return status


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel(reason="stop requested")


def _print_ready(url: str, token: str, ports: list[int], info: dict) -> None:
    print(f"READY {url}", flush=True)
    rows = [("coordinator", url)] + [
        (f"n{i}", f"http://127.0.0.1:{port}") for i, port in enumerate(ports[1:], start=1)
    ]
    width = max(len(name) for name, _ in rows)
    for name, address in rows:
        print(f"  {name:<{width}}  {address}")
    print(f"  token        {token}")
    print(
        f"  cluster      {info.get('cluster_state')} ({info.get('healthy_nodes')} healthy nodes, "
        f"{info.get('total_shards')} shards)"
    )
    print("Ctrl-C stops the cluster.", flush=True)
