"""What the coordinator's routes are handed: every service of one running coordinator.

Built by :mod:`torua.coordinator.assembly` and read by the route modules; it
lives apart from both so that the services never import the HTTP layer to
name it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from torua.coordinator.control.health import HealthMonitor
from torua.coordinator.control.incarnations import Incarnations
from torua.coordinator.control.load import LoadMonitor
from torua.coordinator.control.membership import Membership
from torua.coordinator.control.mover import Mover
from torua.coordinator.control.operations import Operations
from torua.coordinator.control.redistributor import Redistributor
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.data.router import Router
from torua.coordinator.nodes.client import NodeClient
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState
from torua.events import EventBus

__all__ = ["Services"]


@dataclass(frozen=True, slots=True)
class Services:
    state: ClusterState
    monitor: HealthMonitor
    redistributor: Redistributor
    router: Router
    sync: AssignmentSync
    nodes: NodeClient
    bus: EventBus
    mover: Mover
    persister: Persister
    operations: Operations
    stopping: trio.Event  # set when the coordinator begins to shut down (ends SSE streams)
    incarnations: Incarnations
    actions: CopyActions
    membership: Membership  # register and remove: the membership rules
    metrics: CollectorRegistry | None = None  # GET /metrics; holds the probe counters
    info: Callable[[], dict[str, Any]] | None = None  # leader and epoch for /cluster/info
    load: LoadMonitor | None = None  # request rates and their history (GET /load)
