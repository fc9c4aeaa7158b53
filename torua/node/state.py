"""What a node knows about its place in the cluster, apart from its data.

Kept separate from the HTTP layer so the registration loop, the API and tests
share one object: which shard copies the coordinator has given this node, when
it last heard from the coordinator, and how long that word is good for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from torua.node.load import ShardLoad
from torua.sim import seam

__all__ = ["NodeRuntime"]


@dataclass(slots=True)
class NodeRuntime:
    node_id: str
    durable: bool = True
    url: str = ""
    # A fresh id per process start: the coordinator tells a restart from a blip by it.
    incarnation: str = field(default_factory=lambda: seam.current().unique_hex())
    started_at: float = field(default_factory=lambda: seam.current().time())
    held: set[int] = field(default_factory=set)
    lease: float = 17.0  # 3 x 5s + 2s until the coordinator says otherwise
    interval: float = 5.0
    last_heard: float = field(default_factory=trio.current_time)
    assigned_once: bool = False
    assignment_seq: int = 0
    # Which coordinator run numbered the assignments: a new run starts its own count.
    assignment_session: str = ""
    lease_expires_at: float = 0.0
    epoch: int = 0  # the newest leader epoch heard (torua.node.fencing)
    load: ShardLoad = field(default_factory=ShardLoad)  # requests per shard (torua.node.load)

    def heard_from_coordinator(self) -> None:
        self.last_heard = trio.current_time()

    def assign(
        self, shards: list[int], *, seq: int, lease: float, interval: float, session: str = ""
    ) -> bool:
        """Apply an assignment unless a newer one of the same run already arrived.

        Pushes of one coordinator run may race, so within a run the larger
        ``seq`` wins. A new run (a restart, a new leader) numbers from 1 again:
        its first push wins, as the old run is dead or fenced by its epoch.
        Neither depends on a clock, so a coordinator whose clock stepped back
        is still obeyed.
        """
        if session == self.assignment_session and seq < self.assignment_seq:
            return False
        self.assignment_session = session
        self.assignment_seq = seq
        self.held = set(shards)
        self.assigned_once = True
        self.lease, self.interval = lease, interval
        # The lease: how long this word from the coordinator lets us accept writes.
        self.lease_expires_at = trio.current_time() + lease
        self.heard_from_coordinator()
        return True

    def lease_valid(self) -> bool:
        """False once the coordinator has been silent for a whole lease.

        It may be cut off, and a newer coordinator may have moved its copies.
        """
        return trio.current_time() < self.lease_expires_at

    def silent_for(self) -> float:
        return trio.current_time() - self.last_heard

    def uptime(self) -> float:
        return seam.current().time() - self.started_at
