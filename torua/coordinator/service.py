"""The coordinator as a library object: ``await coordinator.run(task_status=...)``.

One nursery holds everything: the leader's services (event bus, health
monitor with one probe task per node, the redistributor fed by the bus, the
assignment sync, the mover; see :mod:`torua.coordinator.assembly`) and the
HTTP API on hypercorn. ``stop()`` lets hypercorn finish in-flight requests;
then the nursery is cancelled and nothing outlives ``run()``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from torua import __version__
from torua.config import CoordinatorSettings
from torua.coordinator.api.app import create_coordinator_app
from torua.coordinator.api.docs import COORDINATOR_DOCS
from torua.coordinator.api.services import Services
from torua.coordinator.assembly import open_services
from torua.coordinator.state.persistence import FileBackend, StateBackend, load_state
from torua.coordinator.state.state import ClusterState
from torua.http.openapi import install_openapi
from torua.http.server import serve_then_cancel

__all__ = ["Coordinator"]

log = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.state = ClusterState(settings)
        self.port: int | None = None
        self.services: Services | None = None
        self._stopping = trio.Event()

    @property
    def url(self) -> str:
        return self.settings.with_port(self.port or self.settings.port).url

    def stop(self) -> None:
        self._stopping.set()

    def _state_dir(self) -> Path | None:
        if self.settings.memory:
            return None
        return Path(self.settings.data_dir) / "coordinator"

    def _load(self) -> None:
        directory = self._state_dir()
        if directory is not None and load_state(self.state, directory):
            log.info(
                "resumed cluster %s with %d nodes from %s",
                self.state.cluster_id,
                len(self.state.registry),
                directory,
            )

    def info(self) -> dict[str, object]:
        """What ``/cluster/info`` adds: a single coordinator always leads, at epoch 0."""
        return {"leader": self.url, "epoch": 0, "role": "leader"}

    def _backend(self) -> StateBackend | None:
        """Where the state is saved (None: in memory only); a simulator saves elsewhere."""
        directory = self._state_dir()
        return None if directory is None else FileBackend(directory)

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        self._load()
        backend = self._backend()
        async with open_services(
            self.state, backend, stopping=self._stopping, info=self.info
        ) as services:
            async with trio.open_nursery() as nursery:
                self.services = services
                app = create_coordinator_app(services)
                install_openapi(app, "Torua coordinator", __version__, COORDINATOR_DOCS)
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
                log.info("coordinator serving at %s", self.url)
                task_status.started(self.url)
            if self._stopping.is_set():
                # The server and every request are done: no write can start now, so
                # the last save (as the services stop) may say none is in flight.
                self.state.writes_closed = True
                services.persister.mark()
