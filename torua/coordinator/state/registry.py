"""The coordinator's membership list: who registered, where, and in what mode.

Health lives in the monitor and placement in the shard table; this module only
remembers identities, so a node that returns keeps its id, and an unhealthy
node stays listed until an operator removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torua.cluster.states import NodeMode
from torua.sim import seam

__all__ = ["NodeRecord", "Registry"]


@dataclass(slots=True)
class NodeRecord:
    id: str
    addr: str
    capacity: int | None = None
    mode: NodeMode = NodeMode.ACTIVE
    registered_at: float = field(default_factory=lambda: seam.current().time())
    last_registered: float = field(default_factory=lambda: seam.current().time())
    ever_healthy: bool = False
    incarnation: str | None = None


class Registry:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeRecord] = {}

    def register(self, node_id: str, addr: str, capacity: int | None) -> tuple[NodeRecord, bool]:
        """Add or refresh a node; returns it and whether anything about it changed."""
        record = self._nodes.get(node_id)
        if record is None:
            record = NodeRecord(id=node_id, addr=addr, capacity=capacity)
            self._nodes[node_id] = record
            return record, True
        changed = record.addr != addr or record.capacity != capacity
        record.addr, record.capacity = addr, capacity
        record.last_registered = seam.current().time()
        return record, changed

    def get(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def remove(self, node_id: str) -> NodeRecord | None:
        return self._nodes.pop(node_id, None)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def all(self) -> list[NodeRecord]:
        return sorted(self._nodes.values(), key=lambda r: r.id)
