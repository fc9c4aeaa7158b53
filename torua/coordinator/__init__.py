"""The coordinator: one process that places shard copies, routes every client
request and keeps the cluster's state.

Subpackages, each importing only those below it (``nox -s lint`` checks it):
``api`` (HTTP) over ``control`` (placement, moves, health, operations) over
``data`` (reads, writes, copies) over ``nodes`` (transport to the nodes) over
``state`` (what is saved). ``assembly`` builds the services and ``service``
runs them with the HTTP server. docs/architecture.md draws the whole.
"""

from torua.coordinator.service import Coordinator as Coordinator

__all__ = ["Coordinator"]
