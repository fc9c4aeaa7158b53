"""Everything a leading coordinator runs, started in one nursery.

A single coordinator leads from start to stop; with etcd (``torua.ha``) a
coordinator leads only for a term, and each term gets fresh services: new
clients that sign every call with the term's epoch, a new health monitor, a
new mover. Leaving the ``async with`` cancels all of it, so nothing from an
old term can act in the next one.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from torua.coordinator.api.metrics import probe_observer
from torua.coordinator.api.services import Services
from torua.coordinator.control.health import HealthMonitor, ProbeRecord
from torua.coordinator.control.incarnations import Incarnations
from torua.coordinator.control.load import LoadMonitor
from torua.coordinator.control.membership import Membership
from torua.coordinator.control.mover import Mover
from torua.coordinator.control.operations import Operations
from torua.coordinator.control.planned import PlannedShutdowns
from torua.coordinator.control.redistributor import Redistributor
from torua.coordinator.control.tombstone_collector import TombstoneCollector
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.router import Router
from torua.coordinator.data.versions import Versions
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.nodes.client import NodeClient
from torua.coordinator.nodes.connections import NodeConnections
from torua.coordinator.nodes.http_probe import RawHttpProbe
from torua.coordinator.state.persistence import Persister, StateBackend
from torua.coordinator.state.state import ClusterState
from torua.coordinator.state.watermark import save_watermark
from torua.events import EventBus
from torua.http.metrics import new_registry

__all__ = ["EPOCH_HEADER", "open_services", "outbound_clients"]

EPOCH_HEADER = "X-Torua-Epoch"


def outbound_clients(token: str | None, *, cluster_id: str, epoch: int = 0) -> NodeConnections:
    """The connections for talking to nodes: a small pool per node, every call signed."""
    headers = {"X-Torua-Coordinator": cluster_id}
    if epoch:
        headers[EPOCH_HEADER] = str(epoch)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return NodeConnections(headers, per_node=64, ssl_context=ssl.create_default_context())


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
        probe = RawHttpProbe(clients.headers, checks=state.checks)
        nursery.start_soon(_close_at_exit, probe)
        load = LoadMonitor(state, nodes)
        count_probe = probe_observer(metrics)

        def on_probe(node_id: str, record: ProbeRecord) -> None:
            count_probe(node_id, record)
            load.on_probe(node_id, record)

        monitor = HealthMonitor(probe, bus.sender(), state.health, on_probe=on_probe)
        tracker = WriteTracker()
        actions = CopyActions(persister, sync, bus.publish_nowait, tracker)
        mover = Mover(state, nodes, sync, tracker, actions)
        incarnations = Incarnations(state, actions, versions)
        sync.on_incarnation = incarnations.observe
        redistributor = Redistributor(
            state, actions, mover=mover, tracker=tracker, persister=persister
        )
        operations = Operations(state, redistributor, mover, persister, bus.publish_nowait)
        operations.planned = PlannedShutdowns(
            state, redistributor, operations.start_drain, persister
        )
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
            membership=Membership(
                state, monitor, incarnations, persister, bus, sync, operations, actions
            ),
            metrics=metrics,
            info=info,
            load=load,
        )
        placement_events = bus.subscribe()
        await nursery.start(persister.run)
        await nursery.start(save_watermark, state, persister)
        await nursery.start(bus.run)
        await nursery.start(partial(redistributor.run, placement_events))
        await nursery.start(monitor.run)
        for record in state.registry.all():
            # Known from the saved state: probe them, and renew their leases at once.
            monitor.watch(record.id, record.addr)
            sync.mark(record.id)
        await nursery.start(sync.run)
        await nursery.start(mover.run)
        await nursery.start(load.run)
        await nursery.start(operations.planned.run)
        await nursery.start(TombstoneCollector(state, nodes).run)
        state.checks.on_disk_clear = lambda addr: redistributor.replan(
            "reconcile", f"the disk check of {addr} passes again"
        )
        try:
            yield services
        finally:
            state.checks.on_disk_clear = None
        nursery.cancel_scope.cancel(reason="leader services closed")
