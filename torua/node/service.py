"""A storage node as a library object: ``await node.run(task_status=...)``.

One nursery owns the HTTP server and the registration loop; ``stop()`` asks
hypercorn for a graceful shutdown, after which the nursery cancels the rest.
"""

from __future__ import annotations

import logging
from functools import partial

import httpx
import trio

from torua import __version__
from torua.config import NodeSettings
from torua.http.openapi import install_openapi
from torua.http.server import serve_then_cancel
from torua.node.api import create_node_app
from torua.node.api_docs import NODE_DOCS
from torua.node.checks import SelfChecks
from torua.node.registration import keep_registered
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore, Store
from torua.node.stores import data_incarnation, open_store, store_directory
from torua.sim import seam

__all__ = ["Node"]

log = logging.getLogger(__name__)


class Node:
    def __init__(self, settings: NodeSettings, *, store: Store | None = None) -> None:
        """``store`` overrides the one the settings name (durable unless ``memory``)."""
        self.settings = settings
        self._given_store = store
        self.store: Store = store if store is not None else MemoryStore()
        self.runtime = NodeRuntime(node_id=settings.node_id, durable=not settings.memory)
        self.port: int | None = None
        self._stopping = trio.Event()
        self.checks: SelfChecks | None = None

    @property
    def url(self) -> str:
        return self.runtime.url

    def stop(self) -> None:
        """Stop serving now; the copies stay on disk (a restart brings them back)."""
        self._stopping.set()

    async def leave(self, *, wait: float = 330.0) -> bool:
        """Graceful leave: ask the coordinator to drain this node, then stop.

        Returns True when the coordinator confirmed that every copy moved
        elsewhere; False (with one clear log line) when it refused, failed, or
        could not be reached within ``wait`` seconds. The node keeps serving
        while it drains: its copies are read from it to fill their successors.
        """
        path = f"/nodes/{self.settings.node_id}/drain"
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
        confirmed = False
        response: httpx.Response | None = None
        failure = "no coordinator answered"
        with trio.move_on_after(wait):
            async with httpx.AsyncClient(
                headers=headers, timeout=wait, transport=seam.current().http_transport()
            ) as client:
                # Any coordinator will do (followers forward); the first that answers decides.
                for coordinator in self.settings.coordinators:
                    try:
                        response = await client.post(coordinator + path)
                        break
                    except (httpx.HTTPError, OSError) as exc:
                        failure = f"{coordinator}: {type(exc).__name__}"
        if response is None:
            log.error(
                "could not drain through the coordinator (%s); stopping without draining", failure
            )
        elif response.status_code == 200:
            confirmed = True
            log.info(
                "drained: %s copies moved off %s; stopping",
                response.json().get("moved"),
                self.settings.node_id,
            )
        else:
            log.error(
                "drain refused by the coordinator (HTTP %d: %s); stopping anyway",
                response.status_code,
                response.text[:300],
            )
        self.stop()
        return confirmed

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        if self._given_store is not None:
            await self._run(task_status)
            return
        async with open_store(self.settings) as store:
            self.store = store
            if not self.settings.memory:
                self.runtime.incarnation = data_incarnation(store_directory(self.settings))
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[str]) -> None:
        settings = self.settings
        self.checks = checks = SelfChecks(
            self.store,
            # A store handed in from outside may live anywhere: no disk to watch.
            data_dir=None if settings.memory or self._given_store else store_directory(settings),
            warn=settings.disk_warn,
            critical=settings.disk_critical,
            interval=settings.check_interval,
        )
        app = create_node_app(
            self.runtime,
            self.store,
            max_value=settings.max_value,
            token=settings.token,
            checks=checks,
        )
        install_openapi(app, f"Torua node {self.settings.node_id}", __version__, NODE_DOCS)
        headers = {}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        async with (
            httpx.AsyncClient(
                headers=headers, timeout=10.0, transport=seam.current().http_transport()
            ) as client,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(checks.run)
            self.port = await nursery.start(
                partial(
                    serve_then_cancel,
                    nursery,
                    app,
                    self.settings.host,
                    self.settings.port,
                    stopping=self._stopping,
                    server=self.settings.server,
                    access_log=self.settings.access_log,
                )
            )
            self.runtime.url = self.settings.public_url(self.port)
            await nursery.start(
                partial(
                    keep_registered,
                    client,
                    self.settings.coordinators,
                    self.runtime,
                    self.settings.capacity,
                    self.store.max_version,
                    backoff_max=self.settings.register_backoff_max,
                )
            )
            log.info("node %s serving at %s", self.settings.node_id, self.runtime.url)
            task_status.started(self.runtime.url)
