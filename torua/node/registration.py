"""Keep this node registered with the coordinator, whatever happens to it.

Registration retries with capped exponential backoff and never gives up while
the node runs: a coordinator that starts later, restarts, or forgets this node
is found again. "Forgotten" is inferred from silence: the coordinator probes
and commands its nodes, so a node that hears nothing for two probe intervals
plus a margin registers again (registration is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import trio

from torua.node.state import NodeRuntime
from torua.sim import seam

__all__ = ["keep_registered", "register_once"]

log = logging.getLogger(__name__)


async def register_once(
    client: httpx.AsyncClient,
    coordinator: str,
    runtime: NodeRuntime,
    capacity: int | None,
    max_version: Callable[[], int],
) -> str | None:
    """One attempt; None on success, else why it failed (an expected failure)."""
    node: dict[str, object] = {
        "id": runtime.node_id,
        "addr": runtime.url,
        "incarnation": runtime.incarnation,
        "durable": runtime.durable,
        "max_version": max_version(),
    }
    if capacity is not None:
        node["capacity"] = capacity
    try:
        with trio.fail_after(5):
            response = await client.post(f"{coordinator}/register", json={"node": node})
    except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if response.status_code >= 300:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None


async def keep_registered(
    client: httpx.AsyncClient,
    coordinators: list[str],
    runtime: NodeRuntime,
    capacity: int | None,
    max_version: Callable[[], int],
    *,
    backoff_max: float = 5.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Register, then re-register whenever the coordinator falls silent.

    With several coordinators any of them will do: a follower
    forwards the registration to the leader. A failed attempt moves on to the
    next URL, so a dead coordinator costs one attempt, not the whole backoff.
    """
    task_status.started()
    attempt = 0
    index = 0
    while True:
        coordinator = coordinators[index % len(coordinators)]
        error = await register_once(client, coordinator, runtime, capacity, max_version)
        if error is not None:
            index += 1
            delay = min(backoff_max, 0.1 * 2**attempt) * seam.current().uniform(0.5, 1.0)
            if attempt % 10 == 0:
                log.warning("registering with %s failed (%s); retrying", coordinator, error)
            attempt += 1
            await trio.sleep(delay)
            continue
        if attempt:
            log.info("registered with %s after %d retries", coordinator, attempt)
        else:
            log.info("registered with %s as %s", coordinator, runtime.node_id)
        attempt = 0
        runtime.heard_from_coordinator()
        # Silence longer than this means the coordinator no longer knows us.
        # A deadline that moves whenever the coordinator speaks: polled at half an interval.
        while runtime.silent_for() < 2 * runtime.interval + 2.0:  # noqa: ASYNC110
            await trio.sleep(max(0.2, runtime.interval / 2))
        log.warning(
            "no word from the coordinator for %.1fs; registering again", runtime.silent_for()
        )
