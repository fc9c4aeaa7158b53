"""Bring a suspect shard's copies together after a coordinator restart.

A shard is suspect since a version when writes above it may have reached some
of its copies and not others (:mod:`torua.cluster.suspects`). Its reads compare
every copy meanwhile, which is slow; this ends that. Every copy's records
above the point are copied into one hub copy, then the hub's into every other
copy. Nodes keep the highest version of each key, so afterwards every copy
holds, for each key, the newest version any of them held: the half-done
writes either took effect everywhere, or were overtaken everywhere. Writes
that start meanwhile reach every copy directly, as always.

The mark is cleared only if the same copies, all healthy, took part from start
to end: a copy placed, dropped or failed meanwhile is reconciled on the next
try. A coordinator that dies part-way finds the mark in its saved state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from torua.coordinator.data.page_copy import MoveAborted
from torua.coordinator.state.state import ClusterState

__all__ = ["Copy", "reconcilable", "reconcile_holders", "reconcile_shard"]

# (shard, source, target, check, since) -> records copied
Copy = Callable[[int, str, str, Callable[[], None], int], Awaitable[int]]


def reconcile_holders(state: ClusterState, shard_id: int) -> list[str]:
    """Every node a write of the shard goes to, the serving copies first (the
    first is the hub: it holds the union of all before it hands it out)."""
    serving = state.readable_copies(shard_id)
    return serving + sorted(state.copies.holders(shard_id) - set(serving))


def reconcilable(state: ClusterState, healthy: Callable[[str], bool]) -> list[int]:
    """Suspect shards whose copies are all healthy: a reconcile needs every one."""
    return [
        s for s in state.suspects.shards() if all(healthy(n) for n in reconcile_holders(state, s))
    ]


async def reconcile_shard(
    state: ClusterState, copy: Copy, healthy: Callable[[str], bool], shard_id: int
) -> int:
    """Exchange the shard's records above its suspect point between all its copies,
    then clear the mark; returns the records copied. Raises :class:`MoveAborted`
    (or the node client's errors) when a copy changed or failed: the mark stays."""
    since = state.suspects.since(shard_id)
    if since is None:
        return 0
    holders = reconcile_holders(state, shard_id)
    members = set(holders)

    def check() -> None:
        if state.copies.holders(shard_id) != members:
            raise MoveAborted(f"the copies of shard {shard_id} changed during its reconciliation")
        for node_id in holders:
            if not healthy(node_id):
                raise MoveAborted(f"{node_id} is not healthy")

    check()
    copied = 0
    # With one copy or none (placement took the others away) nothing can disagree.
    hub, others = (holders[0], holders[1:]) if holders else ("", [])
    for node_id in others:
        copied += await copy(shard_id, node_id, hub, check, since)
    for node_id in others:
        copied += await copy(shard_id, hub, node_id, check, since)
    check()
    state.suspects.cleared(shard_id, since)
    return copied
