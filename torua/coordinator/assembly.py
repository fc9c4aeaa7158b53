"""Everything a leading coordinator runs, started in one nursery.

A single coordinator leads from start to stop; with etcd (``torua.ha``) a
coordinator leads only for a term, and each term gets fresh services: new
clients that sign every call with the term's epoch, a new health monitor, a
new mover. Leaving the ``async with`` cancels all of it, so nothing from an
old term can act in the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from torua.config import HealthSettings
from torua.coordinator.api import Services
from torua.coordinator.assignments import AssignmentSync
from torua.coordinator.client_pool import ClientPool
from torua.coordinator.copy_actions import CopyActions
from torua.coordinator.health import HealthMonitor
from torua.coordinator.http_probe import RawHttpProbe
from torua.coordinator.incarnations import Incarnations
from torua.coordinator.metrics import probe_observer
from torua.coordinator.mover import Mover
from torua.coordinator.node_client import NodeClient
from torua.coordinator.operations import Operations
from torua.coordinator.persistence import Persister, StateBackend
from torua.coordinator.planned import PlannedShutdowns
from torua.coordinator.probes import Probe, make_probe
from torua.coordinator.redistributor import Redistributor
from torua.coordinator.router import Router
from torua.coordinator.state import ClusterState
from torua.coordinator.versions import Versions
from torua.coordinator.write_tracker import WriteTracker
from torua.events import EventBus
from torua.http.metrics import new_registry

__all__ = ["EPOCH_HEADER", "open_services", "outbound_clients"]

EPOCH_HEADER = "X-Torua-Epoch"


def outbound_clients(token: str | None, *, cluster_id: str, epoch: int = 0) -> ClientPool:
    """The clients for talking to nodes: one small pool per node, every call signed."""
    headers = {"X-Torua-Coordinator": cluster_id}
    if epoch:
        headers[EPOCH_HEADER] = str(epoch)
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


@asynccontextmanager
async def open_services(
    state: ClusterState,
    backend: StateBackend | None,
    *,
    stopping: trio.Event,
    epoch: int = 0,
    on_lost: Callable[[], None] | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
) -> AsyncIterator[Services]:
    """Start the leader's background work; yield the services the API calls."""
    bus = EventBus()
    async with (
        outbound_clients(state.settings.token, cluster_id=state.cluster_id, epoch=epoch) as clients,
        trio.open_nursery() as nursery,
    ):
        nodes = NodeClient(clients)
        persister = Persister(state, backend, on_lost=on_lost)
        versions = Versions(state, persister)
        sync = AssignmentSync(state, nodes)
        metrics = new_registry()
        probe = RawHttpProbe(clients.headers)
        nursery.start_soon(_close_at_exit, probe)
        monitor = HealthMonitor(probe, bus.sender(), state.health, on_probe=probe_observer(metrics))
        tracker = WriteTracker()
        actions = CopyActions(persister, sync, bus.publish_nowait, tracker)
        mover = Mover(state, nodes, sync, tracker, actions)
        incarnations = Incarnations(state, actions, versions)
        sync.on_incarnation = incarnations.observe
        redistributor = Redistributor(
            state, actions, mover=mover, tracker=tracker, persister=persister
        )
        operations = Operations(state, redistributor, mover, persister, bus.publish_nowait)
        operations.planned = PlannedShutdowns(state, redistributor, operations, persister)
        services = Services(
            state=state,
            monitor=monitor,
            redistributor=redistributor,
            router=Router(state, nodes, sync, tracker, actions, versions),
            sync=sync,
            nodes=nodes,
            bus=bus,
            mover=mover,
            persister=persister,
            operations=operations,
            stopping=stopping,
            incarnations=incarnations,
            actions=actions,
            metrics=metrics,
            info=info,
        )
        placement_events = bus.subscribe()
        await nursery.start(persister.run)
        await nursery.start(bus.run)
        await nursery.start(partial(redistributor.run, placement_events))
        await nursery.start(monitor.run)
        for record in state.registry.all():
            # Known from the saved state: probe them, and renew their leases at once.
            monitor.watch(record.id, record.addr)
            sync.mark(record.id)
        await nursery.start(sync.run)
        await nursery.start(mover.run)
        await nursery.start(operations.planned.run)
        yield services
        nursery.cancel_scope.cancel(reason="leader services closed")
