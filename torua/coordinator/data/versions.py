"""Write versions that no clock can break: a counter reserved in saved blocks.

Copies merge by "highest version wins", so every version the coordinator
issues must be larger than every version any copy already holds, across
coordinator restarts, leader failovers and wall clocks that jump. Versions
are therefore a plain counter, never a clock. Before the counter passes the
ceiling written in the saved state (the state file, or etcd under the
leader's term), a new block is reserved and saved; a restarted coordinator or
a new leader starts at the saved ceiling, above anything issued before. The
counter also jumps past any larger version a node reports (registration,
assignment answers, a write that was not applied), so data written under an
older scheme or a lost state file cannot shadow new writes.
"""

from __future__ import annotations

from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState

__all__ = ["BLOCK", "Versions"]

BLOCK = 1 << 20  # versions per saved reservation: one state save per ~1M writes


class Versions:
    def __init__(self, state: ClusterState, persister: Persister) -> None:
        self._state = state
        self._persister = persister
        # Every version at or below this was issued by a coordinator of this
        # cluster (this one, or one before it: a coordinator starts at the saved
        # ceiling); versions merely observed on nodes do not raise it.
        self.issued = state.version_hwm

    def ours(self, version: int) -> bool:
        """Whether a copy's newer ``version`` came from a write this cluster issued.

        Then the write that found it was overtaken by a newer one and needs no
        resend; a version above every issued one means the counter is behind
        (data from an older scheme, a lost state file) and the write must be
        resent above it."""
        return version <= self.issued

    def observe(self, version: int | None) -> None:
        """A copy holds ``version``: issue only larger ones from now on."""
        if version is not None and version > self._state.version_hwm:
            self._state.version_hwm = version

    async def next(self) -> int:
        """A version larger than any issued or observed, its block saved first."""
        state = self._state
        while state.version_hwm >= state.version_saved:
            wanted = state.version_hwm + BLOCK
            state.version_reserved = max(state.version_reserved, wanted)
            await self._persister.flush()
            # Everything marked before flush() returned is saved, this reservation too.
            state.version_saved = max(state.version_saved, wanted)
        state.version_hwm += 1
        self.issued = state.version_hwm
        return state.version_hwm
