"""A single-member etcd on loopback, for ``up --coordinators N`` and tests.

etcd is an external program (Debian's ``etcd-server`` package); Torua only
builds its command line and waits until it answers. One member is enough on
one machine: the point of ``up --coordinators 3`` is to show coordinators
failing over, not etcd itself.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import trio

__all__ = ["MISSING_ETCD", "etcd_argv", "find_etcd", "free_port", "wait_healthy"]

MISSING_ETCD = (
    "etcd is not installed: several coordinators keep their state in etcd. "
    "Install Debian's etcd-server package (apt-get install etcd-server) or put etcd on PATH."
)


def find_etcd() -> str | None:
    return shutil.which("etcd")


def free_port() -> int:
    """A port the OS says is free now (etcd needs numbers up front, not port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def etcd_argv(binary: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        binary,
        "--name",
        "torua",
        "--data-dir",
        str(data_dir),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"torua={peer}",
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]


async def wait_healthy(url: str, *, within: float) -> bool:
    """Until etcd's ``/health`` says true; False after ``within`` seconds."""
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        with trio.move_on_after(within):
            while True:
                try:
                    response = await client.get(url + "/health")
                    if response.status_code == 200 and response.json().get("health") == "true":
                        return True
                except (httpx.HTTPError, ValueError):
                    pass
                await trio.sleep(0.1)
    return False
