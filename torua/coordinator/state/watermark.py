"""Keep the saved settled watermark recent in a quiet cluster.

Every snapshot carries the watermark (every write at or below it had its
outcome recorded), but writes alone never save the state: that would cost a
save per write. A coordinator that restarts doubts every record above the
saved watermark on shards with several copies, and reconciles them, so a stale
watermark costs copying, never correctness. This task saves it whenever it
moved, at most once per interval.
"""

from __future__ import annotations

import trio

from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState

__all__ = ["WATERMARK_INTERVAL", "save_watermark"]

WATERMARK_INTERVAL = 2.0  # seconds between saves of a watermark that moved


async def save_watermark(
    state: ClusterState,
    persister: Persister,
    interval: float = WATERMARK_INTERVAL,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    marked = state.settled_watermark()
    task_status.started()
    next_tick = trio.current_time()
    while True:
        next_tick += interval
        await trio.sleep_until(next_tick)
        watermark = state.settled_watermark()
        if watermark > marked:
            persister.mark()  # the snapshot reads the watermark when it is taken
            marked = watermark
