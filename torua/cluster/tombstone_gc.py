"""When tombstones may be purged, and which copies must then be rebuilt from scratch.

Pure: no trio, no I/O; the coordinator's ``TombstoneCollector`` and the mover
ask these questions. A delete leaves a tombstone so that a copy that missed the
delete is corrected by "highest version wins" when copies are compared. Once
the tombstone is purged, a copy still holding the old value would win instead,
so the two rules go together (docs/replication.md, "Tombstone GC"):

1. a shard's tombstones are purged only while every copy of it is in sync, up,
   and nothing about it is unsettled or lost (:func:`purgeable`);
2. a copy not known to be in sync within the last grace period is filled from
   an empty store, never merged (:meth:`InSyncTimes.needs_full_fill`).
"""

from __future__ import annotations

from collections.abc import Callable

from torua.cluster.copies import Copies

__all__ = ["InSyncTimes", "purgeable"]


def purgeable(copies: Copies, shard_id: int, is_up: Callable[[str], bool]) -> bool:
    """Whether every copy of the shard holds every acknowledged delete right now."""
    shard = copies.table.shards[shard_id]
    return (
        bool(shard.copies)
        and copies.settled(shard_id)
        and all(is_up(n) for n in shard.copies)
        and not copies.lost.get(shard_id)
        and not copies.dropping.get(shard_id)
        and not copies.unsettled.get(shard_id)
    )


class InSyncTimes:
    """When the coordinator last saw each copy in sync (its own wall clock).

    Kept in memory only: a restarted coordinator or a new leader knows no
    times, so every copy it fills is filled from scratch, which is always safe.
    The times are noted every second, and exactly when a write takes a copy out
    of the in-sync set; a time can only be older than the truth, which errs the
    safe way (a copy looks away longer than it was).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], float] = {}

    def note_leaving(self, shard_id: int, node_ids: list[str], now: float) -> None:
        """Copies about to leave the in-sync set were in sync until ``now``."""
        for node_id in node_ids:
            self._seen[(shard_id, node_id)] = now

    def note(self, copies: Copies, now: float) -> None:
        for shard in copies.table.shards:
            for node_id in shard.in_sync:
                self._seen[(shard.shard_id, node_id)] = now

    def needs_full_fill(
        self, copies: Copies, shard_id: int, node_id: str, now: float, grace: float
    ) -> bool:
        """Whether the copy must be emptied before it is filled (or caught up).

        True when it was not seen in sync within ``grace``: the other copies may
        have purged tombstones of deletes it missed, and merging what it holds
        would bring those keys back. A lost copy waiting to be merged is never
        emptied: its shard purges nothing until the merge (rule 1), and its data
        may be the only copy of acknowledged writes.
        """
        if node_id in copies.lost.get(shard_id, ()):
            return False
        seen = self._seen.get((shard_id, node_id))
        return seen is None or now - seen > grace
