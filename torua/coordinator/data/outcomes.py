"""Which writes are still without an outcome: the settled watermark's source.

Every write (a key, or a bulk request's batch for one shard) is tracked from
before it takes its first version until its outcome is recorded in memory:
acknowledged, or its keys marked unsettled. The smallest version counter seen
at the start of a write still tracked is the settled watermark that every
snapshot saves (``ClusterState.settled_watermark``); a coordinator that starts
from that snapshot doubts its shards' copies above it only (rule 13 in
docs/replication.md). Tracking is a counter update at each end: no save.
"""

from __future__ import annotations

from collections.abc import Sequence

from torua.coordinator.data.copy_actions import CopyActions
from torua.coordinator.state.state import ClusterState
from torua.errors import ApiError

__all__ = ["WriteOutcomes"]


class _Tracked:
    """The context manager :meth:`WriteOutcomes.track` returns (a plain class: it
    runs on every write)."""

    __slots__ = ("_began", "_keys", "_outcomes", "_shard_id")

    def __init__(self, outcomes: WriteOutcomes, shard_id: int, keys: Sequence[str]) -> None:
        self._outcomes = outcomes
        self._shard_id = shard_id
        self._keys = keys
        self._began = 0

    def __enter__(self) -> None:
        state = self._outcomes.state
        self._began = state.version_hwm  # every version this write takes is above
        state.write_starts[self._began] += 1

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        if kind is not None and not issubclass(kind, ApiError):
            # Stopped without an outcome (cancelled: the client left, the coordinator
            # is stopping). An API error's outcome was recorded before it was raised.
            self._outcomes.unknown(self._shard_id, self._keys)
        starts = self._outcomes.state.write_starts
        if starts[self._began] <= 1:
            del starts[self._began]
        else:
            starts[self._began] -= 1


class WriteOutcomes:
    def __init__(self, state: ClusterState, actions: CopyActions) -> None:
        self.state = state
        self._actions = actions

    def track(self, shard_id: int, keys: Sequence[str]) -> _Tracked:
        """Hold the settled watermark below this write until its outcome is recorded."""
        return _Tracked(self, shard_id, keys)

    def unknown(self, shard_id: int, keys: Sequence[str]) -> None:
        """The write may be on some copies only: its keys are marked unsettled at
        once, in memory, so no snapshot has the watermark past it without the mark."""
        copies = self.state.copies
        self._actions.now([i for key in keys for i in copies.key_failed(shard_id, key)])
