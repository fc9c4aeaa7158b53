"""Shards whose copies may differ since a version, after a coordinator restart. Pure.

A write in flight when the coordinator died (or a leader lost its term) may
have reached some copies of its shard and not others, and nothing marked its
key: that happens only when a write fails and the coordinator lives to answer.
The saved state therefore carries a *settled watermark*: every write with a
version at or below it had its outcome recorded (acknowledged, or its key
marked unsettled) in that very snapshot. A restarted coordinator holds every
shard with more than one copy *suspect since* the watermark: its reads compare
every copy, and the mover exchanges the records above the point between its
copies, then clears the mark. The marks are saved too, so a coordinator that
dies again before that finishes still knows where each shard's doubt begins
once the watermark has moved on. docs/replication.md (rule 13) tells why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torua.cluster.copies import Copies

__all__ = ["Suspects"]


class Suspects:
    def __init__(self) -> None:
        self._since: dict[int, int] = {}

    def __contains__(self, shard_id: int) -> bool:
        return shard_id in self._since

    def __len__(self) -> int:
        return len(self._since)

    def shards(self) -> list[int]:
        return sorted(self._since)

    def since(self, shard_id: int) -> int | None:
        """Records above this version may be on some copies and not others."""
        return self._since.get(shard_id)

    def mark(self, shard_id: int, since: int) -> None:
        """Doubt since ``since``; an older doubt already held is kept."""
        held = self._since.get(shard_id)
        self._since[shard_id] = since if held is None else min(held, since)

    def cleared(self, shard_id: int, since: int) -> bool:
        """A reconciliation from ``since`` reached every copy: the shard is trusted
        again, unless an older doubt was marked meanwhile."""
        if self._since.get(shard_id) != since:
            return False
        del self._since[shard_id]
        return True

    def at_start(self, copies: Copies, watermark: int) -> None:
        """A coordinator starts from saved state: every shard whose writes reach
        more than one copy may have half-written ones above ``watermark``."""
        for shard in copies.table.shards:
            if len(copies.holders(shard.shard_id)) > 1:
                self.mark(shard.shard_id, watermark)

    def to_json(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self._since.items())}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suspects:
        suspects = cls()
        for shard_id, since in data.items():
            suspects.mark(int(shard_id), int(since))
        return suspects
