"""The coordinator as a library object: ``await coordinator.run(task_status=...)``.

One nursery holds everything: the event bus, the health monitor (one probe
task per node), the redistributor fed by the bus, the assignment sync, and the
HTTP API on hypercorn. ``stop()`` lets hypercorn finish in-flight requests;
then the nursery is cancelled and nothing outlives ``run()``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from torua import __version__
from torua.config import CoordinatorSettings, HealthSettings
from torua.coordinator.api import Services, create_coordinator_app
from torua.coordinator.api_docs import COORDINATOR_DOCS
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.client_pool import ClientPool
from torua.coordinator.health import HealthMonitor
from torua.coordinator.http_probe import RawHttpProbe
from torua.coordinator.metrics import probe_observer
from torua.coordinator.mover import Mover
from torua.coordinator.node_client import NodeClient
from torua.coordinator.operations import Operations
from torua.coordinator.persistence import Persister, load_state
from torua.coordinator.probes import Probe, make_probe
from torua.coordinator.redistributor import Redistributor
from torua.coordinator.router import Router
from torua.coordinator.state import ClusterState
from torua.coordinator.write_tracker import WriteTracker
from torua.events import EventBus
from torua.http.metrics import new_registry
from torua.http.openapi import install_openapi
from torua.http.server import serve_then_cancel

__all__ = ["Coordinator"]

log = logging.getLogger(__name__)


def outbound_clients(token: str | None, *, cluster_id: str) -> ClientPool:
    """The clients for talking to nodes: one small pool per node."""
    headers = {"X-Torua-Coordinator": cluster_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return ClientPool(headers)


def pooled_probe(clients: ClientPool) -> Probe:
    """The health probe, sent through the probed node's own client."""

    async def probe(addr: str, settings: HealthSettings) -> str | None:
        return await make_probe(clients.get(addr))(addr, settings)

    return probe


async def _close_at_exit(probe: RawHttpProbe) -> None:
    """Close the probe's kept-alive connections when the nursery is cancelled."""
    try:
        await trio.sleep_forever()
    finally:
        probe.close()


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

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        self._load()
        bus = EventBus()
        async with (
            outbound_clients(self.settings.token, cluster_id=self.state.cluster_id) as clients,
            trio.open_nursery() as nursery,
        ):
            nodes = NodeClient(clients)
            sync = AssignmentSync(self.state, nodes)
            metrics = new_registry()
            probe = RawHttpProbe(clients.headers, https_probe=pooled_probe(clients))
            nursery.start_soon(_close_at_exit, probe)
            monitor = HealthMonitor(
                probe,
                bus.sender(),
                self.state.health,
                on_probe=probe_observer(metrics),
            )
            persister = Persister(self.state, self._state_dir())
            tracker = WriteTracker()
            mover = Mover(self.state, nodes, sync, tracker, persister, bus.publish_nowait)
            redistributor = Redistributor(
                self.state,
                sync,
                bus.publish_nowait,
                mover=mover,
                tracker=tracker,
                persister=persister,
            )
            services = Services(
                state=self.state,
                monitor=monitor,
                redistributor=redistributor,
                router=Router(self.state, nodes, sync, tracker, persister, mover.kick),
                sync=sync,
                nodes=nodes,
                bus=bus,
                mover=mover,
                persister=persister,
                operations=Operations(
                    self.state, redistributor, mover, persister, bus.publish_nowait
                ),
                stopping=self._stopping,
                metrics=metrics,
            )
            self.services = services
            placement_events = bus.subscribe()
            await nursery.start(persister.run)
            await nursery.start(bus.run)
            await nursery.start(partial(redistributor.run, placement_events))
            await nursery.start(monitor.run)
            for record in self.state.registry.all():
                # Known from the saved state: probe them, and renew their leases at once.
                monitor.watch(record.id, record.addr)
                sync.mark(record.id)
            await nursery.start(sync.run)
            await nursery.start(mover.run)

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
                )
            )
            log.info("coordinator serving at %s", self.url)
            task_status.started(self.url)
