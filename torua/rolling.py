"""A rolling restart: every node in turn, never more than one away.

For each node: tell the coordinator it restarts (``PUT /nodes/{id}/shutdown``
with ``type: restart``, so its copies wait for it instead of being rebuilt),
restart the process (``up`` restarts its child; elsewhere a command such as
``systemctl restart torua@{node}``), wait until the node is back and the cluster
is green again (its copies caught up by delta), withdraw the notice, next.

One walk serves both ``up`` (on SIGHUP) and ``torua rolling-restart``; only
how a node's process is restarted differs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import trio

from torua.errors import ToruaError
from torua.green import is_green

__all__ = ["RollingRestartFailed", "rolling_restart", "up_file", "write_up_file"]

Restart = Callable[[str], Awaitable[None]]
Report = Callable[[str], None]
POLL = 0.2


class RollingRestartFailed(ToruaError):
    """The walk stopped; the message says where and why (the cluster is left as it is)."""


def up_file(coordinator_url: str) -> Path:
    """Where ``up`` serving that coordinator says who it is: its pid, for SIGHUP,
    and the progress of its rolling restarts."""
    port = urlsplit(coordinator_url).port or 80
    return Path(tempfile.gettempdir()) / f"torua-up-{port}.json"


def write_up_file(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


async def _ok(response: Awaitable[httpx.Response], *, ok: tuple[int, ...] = (200,)) -> Any:
    reply = await response
    if reply.status_code not in ok:
        raise RollingRestartFailed(f"HTTP {reply.status_code}: {reply.text[:200]}")
    return reply.json() if reply.content else None


async def _green(http: httpx.AsyncClient) -> bool:
    info = await _ok(http.get("/cluster/info"))
    shards = (await _ok(http.get("/shards")))["shards"]
    return is_green(info, shards)


async def _poll_until(check: Callable[[], Awaitable[bool]]) -> None:
    while not await check():  # noqa: ASYNC110 (the cluster is remote: nothing to wait on)
        await trio.sleep(POLL)


async def rolling_restart(
    http: httpx.AsyncClient,
    restart: Restart,
    *,
    allocation_delay: str = "5m",
    step_within: float = 300.0,
    report: Report = lambda line: None,
) -> list[str]:
    """Restart every registered node, one at a time; returns them in order.

    Refuses to start unless the cluster is green: with a copy already short, a
    restart could leave a shard with no copy at all."""
    if not await _green(http):
        raise RollingRestartFailed("the cluster is not green; a rolling restart needs it green")
    nodes = sorted(n["id"] for n in (await _ok(http.get("/nodes")))["nodes"])
    for node_id in nodes:
        path = f"/nodes/{quote(node_id, safe='')}/shutdown"
        started = time.monotonic()
        await _ok(http.put(path, json={"type": "restart", "allocation_delay": allocation_delay}))
        report(f"{node_id}: restarting")
        await restart(node_id)

        async def back(node_id: str = node_id, path: str = path) -> bool:
            status = (await _ok(http.get(path)))["status"]
            if status == "expired":
                raise RollingRestartFailed(f"{node_id} did not come back within its delay")
            return bool(status == "complete")

        try:
            with trio.fail_after(step_within):
                await _poll_until(back)
                report(f"{node_id}: back after {time.monotonic() - started:.1f}s; catching up")
                await _poll_until(lambda: _green(http))
        except trio.TooSlowError:
            # The notice stays: the node's copies keep waiting until its delay ends.
            raise RollingRestartFailed(
                f"{node_id} was not back with the cluster green within {step_within:.0f}s"
            ) from None
        await _ok(http.delete(path), ok=(204,))
        report(f"{node_id}: done in {time.monotonic() - started:.1f}s; cluster green")
    return nodes
