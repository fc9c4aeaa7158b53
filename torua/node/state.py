"""What a node knows about its place in the cluster, apart from its data.

Kept separate from the HTTP layer so the registration loop, the API and tests
share one object: which shard copies the coordinator has given this node, when
it last heard from the coordinator, and how long that word is good for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

__all__ = ["NodeRuntime"]


@dataclass(slots=True)
class NodeRuntime:
    node_id: str
    url: str = ""
    started_at: float = field(default_factory=time.time)
    held: set[int] = field(default_factory=set)
    lease: float = 17.0  # 3 x 5s + 2s until the coordinator says otherwise
    interval: float = 5.0
    last_heard: float = field(default_factory=trio.current_time)
    assigned_once: bool = False
    coordinator_changed: trio.Event = field(default_factory=trio.Event)

    def heard_from_coordinator(self) -> None:
        self.last_heard = trio.current_time()

    def silent_for(self) -> float:
        return trio.current_time() - self.last_heard

    def uptime(self) -> float:
        return time.time() - self.started_at
