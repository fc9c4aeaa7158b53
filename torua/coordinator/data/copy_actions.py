"""Carry out what the copy state machine (torua.cluster.copies) asks for.

The machine decides; this does: saves go to the persister (awaited where a rule
says "saved before"), pushes to the assignment sync, drops and refills to the
mover, announcements to the event bus. Keeping the doing in one place is what
lets router, mover, redistributor and API handlers stay out of the copy sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from torua.cluster.instructions import Announce, Drop, Instruction, Push, Refill, Restart, Save
from torua.coordinator.data.assignments import AssignmentSync
from torua.coordinator.data.write_tracker import WriteTracker
from torua.coordinator.state.persistence import Persister
from torua.events import ClusterEvent, ShardMoved

__all__ = ["CopyActions"]


class DataWorker(Protocol):
    """The mover, as far as instructions need it."""

    def kick(self) -> None: ...

    def schedule_drop(self, node_id: str, shard_id: int) -> None: ...


class _Idle:
    def kick(self) -> None:
        return None

    def schedule_drop(self, node_id: str, shard_id: int) -> None:
        return None


class CopyActions:
    def __init__(
        self,
        persister: Persister,
        sync: AssignmentSync,
        publish: Callable[[ClusterEvent], None],
        tracker: WriteTracker,
    ) -> None:
        self._persister = persister
        self._tracker = tracker
        self._sync = sync
        self._publish = publish
        self.worker: DataWorker = _Idle()  # the mover, once it exists

    def now(self, instructions: Sequence[Instruction]) -> bool:
        """Start everything; True when a save was asked for (not yet done)."""
        save = False
        for item in instructions:
            if isinstance(item, Save):
                save = True
                self._persister.mark()
            elif isinstance(item, Push):
                self._sync.mark(*item.nodes)
            elif isinstance(item, Refill):
                self.worker.kick()
            elif isinstance(item, Restart):
                self._tracker.note_missed(item.shard_id, item.node_id)
            elif isinstance(item, Drop):
                self.worker.schedule_drop(item.node_id, item.shard_id)
            elif isinstance(item, Announce):
                self._publish(
                    ShardMoved(
                        shard_id=item.shard_id,
                        source=item.source,
                        target=item.target,
                        primary=item.primary,
                        reason=item.reason,
                    )
                )
        return save

    async def durably(self, instructions: Sequence[Instruction]) -> None:
        """As :meth:`now`, and return only once the asked-for save is done."""
        if self.now(instructions):
            await self._persister.flush()
