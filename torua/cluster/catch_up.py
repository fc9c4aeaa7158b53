"""Where each out-of-sync copy that kept its data must catch up from. Pure.

A copy that misses a write keeps everything it held; to rejoin the in-sync
set it needs only the records above the lowest version it may have missed
(its *point*). :class:`torua.cluster.copies.Copies` lowers a point for every
write that misses the copy and forgets it whenever the copy's data may be
gone, so a point is always a safe lower bound, and no point means a full fill.
docs/replication.md (rule 11) tells why the point is not simply the newest
version the copy holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["CatchUp"]


class CatchUp:
    def __init__(self) -> None:
        self.points: dict[tuple[int, str], int] = {}
        self.lowered: set[int] = set()  # shards with a point moved back, not yet saved

    def get(self, shard_id: int, node_id: str) -> int | None:
        return self.points.get((shard_id, node_id))

    def lower(self, shard_id: int, node_id: str, point: int) -> None:
        """The copy may lack every version above ``point``: keep the lower bound."""
        key = (shard_id, node_id)
        self.points[key] = max(0, min(self.points.get(key, point), point))

    def moved_back(self, shard_id: int, node_id: str, point: int) -> None:
        """An out-of-sync copy missed a write older than its point (one in flight
        when it left the set): lower the point and remember to save it."""
        current = self.points.get((shard_id, node_id))
        if current is not None and point < current:
            self.lower(shard_id, node_id, point)
            self.lowered.add(shard_id)

    def take_lowered(self, shard_id: int) -> bool:
        found = shard_id in self.lowered
        self.lowered.discard(shard_id)
        return found

    def done(self, shard_id: int, node_id: str) -> None:
        """The copy is in sync again."""
        self.points.pop((shard_id, node_id), None)

    def keep_only(self, placed: Iterable[tuple[int, str]]) -> None:
        """Forget copies no longer placed: their data may be dropped meanwhile."""
        keep = set(placed)
        for key in [k for k in self.points if k not in keep]:
            del self.points[key]

    def forget_node(self, node_id: str) -> None:
        """The node lost its data (or was removed): every copy it has starts over."""
        for key in [k for k in self.points if k[1] == node_id]:
            del self.points[key]

    def to_json(self) -> list[list[Any]]:
        return [[s, n, v] for (s, n), v in sorted(self.points.items())]

    @classmethod
    def from_json(cls, data: Iterable[list[Any]]) -> CatchUp:
        catch_up = cls()
        catch_up.points = {(int(s), str(n)): int(v) for s, n, v in data}
        return catch_up
