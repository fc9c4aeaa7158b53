"""What a placement change means for the data: which copies must be filled,
which keep serving until then, and which were lost. Pure, like placement.

Placement rewrites a shard's ``copies`` in one step; the data cannot move that
fast. :func:`settle` reconciles the two views after each placement change:

* while some authoritative copy (in sync, or retiring) is on a live node, the
  data lives on: every new copy starts *out of sync* and must be filled, and
  each in-sync live copy that placement replaced keeps serving as *retiring*
  until the shard's copies are all in sync again (then it is released);
* when every authoritative copy is on a dead node, nothing can be filled: the
  new copies start empty and in sync (they take every write from now on), and
  the dead authoritative copies are recorded as *lost*, so a miss is answered
  503 instead of a false 404 until they return and are merged back;
* except while a dead authoritative copy is still placed (placement was
  deferred and only some copies moved, as ``assign_primary`` does): it still
  holds every acknowledged write, so new copies wait to be filled from it
  rather than start empty beside it; the dead copies that left are lost.

A move whose target fails before it is whole is undone by :func:`roll_back`:
the retiring copy it was to replace takes its place again, so the data never
depends on a copy that was never complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torua.cluster.table import Shard

__all__ = ["Settled", "authoritative", "handover_done", "roll_back", "settle"]


@dataclass(slots=True)
class Settled:
    retiring: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    # Authoritative copies on dead nodes, replaced while a live one served.
    departed: set[str] = field(default_factory=set)
    # No authoritative copy was live: whatever the shard held is on dead nodes.
    orphaned: bool = False


def authoritative(shard: Shard, retiring: set[str], is_up: Callable[[str], bool]) -> list[str]:
    """Copies that hold every acknowledged write and can serve: in-sync first, primary first."""
    ordered = [n for n in shard.copies if n in shard.in_sync]
    ordered += sorted(retiring - set(ordered))
    return [n for n in ordered if is_up(n)]


def settle(
    shard: Shard,
    old_copies: list[str],
    old_in_sync: set[str],
    retiring: set[str],
    is_up: Callable[[str], bool],
) -> Settled:
    """Fix ``shard.in_sync`` after placement changed ``shard.copies``; return the
    shard's retiring copies and the copies newly lost."""
    old_authoritative = old_in_sync | retiring
    live = {n for n in old_authoritative if is_up(n)}
    added = [n for n in shard.copies if n not in old_copies]
    removed = [n for n in old_copies if n not in shard.copies]
    if live:
        # A copy placed back on a node that still holds the data authoritatively
        # (it was retiring) needs no fill; every other new copy does.
        shard.in_sync.difference_update(n for n in added if n not in live)
        shard.in_sync.update(n for n in added if n in live)
        kept = (retiring | {n for n in removed if n in live}) - set(shard.copies)
        departed = {n for n in removed if n in old_authoritative and n not in live}
        return Settled(retiring=kept, departed=departed)
    lost = old_authoritative - set(shard.copies)
    if old_authoritative & set(shard.copies):
        shard.in_sync.difference_update(added)
        return Settled(lost=lost, orphaned=True)
    shard.in_sync.update(shard.copies)
    return Settled(lost=lost, orphaned=True)


def handover_done(shard: Shard, is_up: Callable[[str], bool]) -> bool:
    """Retiring copies may go once every current copy is in sync and up: a dead
    successor cannot serve, so the retiring copy must stay."""
    return bool(shard.copies) and all(n in shard.in_sync and is_up(n) for n in shard.copies)


def roll_back(
    shard: Shard, retiring: set[str], is_up: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """Put live retiring copies back in the place of copies that failed while
    being filled; returns (failed, restored) pairs, and ``retiring`` keeps the rest.

    Without this, placement would treat the failed target as the shard's copy
    (or re-home it anywhere) although the retiring copy holds every write.
    """
    failed = [n for n in shard.copies if n not in shard.in_sync and not is_up(n)]
    spare = [n for n in sorted(retiring) if is_up(n) and n not in shard.copies]
    pairs = list(zip(failed, spare, strict=False))
    for dead, restored in pairs:
        shard.copies[shard.copies.index(dead)] = restored
        shard.in_sync.add(restored)
        retiring.discard(restored)
    return pairs
