"""Load-aware placement: move copies off the busiest node by request rate.

Copy-count balance (:func:`torua.cluster.placement.rebalance`) treats every
copy alike, but a hot shard can make one node serve most of the traffic while
each node holds the same number of copies. This plan reads what each copy
served (requests per second, measured on the nodes) and moves copies from the
busiest accepting node to the least busy ones until the busiest is within
``tolerance`` of the mean, or no single move helps, or ``max_moves`` is spent.

Rules, each for a reason:

* Primaries first: a primary serves its shard's reads as well as its writes,
  so moving one sheds the most load per byte copied.
* A move is taken only when both ends end below the busiest node's current
  rate, so the maximum never gets worse, and only when it lowers that peak by
  at least :data:`MIN_GAIN` of the mean: each move costs a full copy of the
  shard's data, which a sliver of balance does not repay.
* Targets must accept copies (healthy, not leaving) and have room; a shard
  that is still being filled or handed over (``busy``) is left alone, and no
  shard moves twice in one plan: each move is a full fill through the mover.
* A moved copy is assumed to bring its rate with it; the next measurement
  corrects that.

Like the other placement functions it mutates the table it is given and
returns the moves, so the coordinator's redistributor can run it as a rule.
Pure and synchronous: no trio, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .table import Move, NodeState, ShardTable

__all__ = ["LOAD_REASON", "MIN_GAIN", "TOLERANCE", "balance_load", "node_rates"]

TOLERANCE = 0.25
"""The busiest node may serve this fraction more than the mean before copies move."""

MIN_GAIN = 0.05
"""A move must lower the busiest node's rate by this fraction of the mean, at least."""

LOAD_REASON = "load"

Rates = Mapping[tuple[int, str], float]  # (shard, node) -> requests/s that copy served


def node_rates(table: ShardTable, rates: Rates, node_ids: Collection[str]) -> dict[str, float]:
    """Each node's request rate: the sum over the copies it holds."""
    load = dict.fromkeys(node_ids, 0.0)
    for shard in table.shards:
        for node in shard.copies:
            if node in load:
                load[node] += rates.get((shard.shard_id, node), 0.0)
    return load


def balance_load(
    table: ShardTable,
    nodes: Mapping[str, NodeState],
    rates: Rates,
    *,
    max_moves: int,
    busy: Collection[int] = (),
    tolerance: float = TOLERANCE,
) -> list[Move]:
    """Relocate up to ``max_moves`` copies to bring the busiest node near the mean.

    Mutates ``table`` (each move applied) and returns the moves in order.
    """
    accepting = sorted(n for n, state in nodes.items() if state.accepting)
    if len(accepting) < 2:
        return []
    rates = dict(rates)
    moved: set[int] = set(busy)
    moves: list[Move] = []
    while len(moves) < max_moves:
        load = node_rates(table, rates, accepting)
        mean = sum(load.values()) / len(accepting)
        busiest = max(accepting, key=lambda n: (load[n], n))
        if mean <= 0 or load[busiest] <= (1 + tolerance) * mean:
            break
        move = _best_move(table, nodes, rates, load, busiest, moved, MIN_GAIN * mean)
        if move is None:
            break
        table.apply(move)
        assert move.target is not None
        rates[(move.shard_id, move.target)] = rates.pop((move.shard_id, busiest), 0.0)
        moved.add(move.shard_id)
        moves.append(move)
    return moves


def _best_move(
    table: ShardTable,
    nodes: Mapping[str, NodeState],
    rates: Mapping[tuple[int, str], float],
    load: Mapping[str, float],
    busiest: str,
    moved: Collection[int],
    min_gain: float,
) -> Move | None:
    """The copy on ``busiest`` whose move lowers the larger of the two ends most,
    a primary if any primary move helps; None when no move helps."""
    top = load[busiest]
    best: tuple[tuple[bool, float, float, int, str], Move] | None = None
    for shard in table.shards:
        sid = shard.shard_id
        if sid in moved or busiest not in shard.copies or busiest not in shard.in_sync:
            continue
        rate = rates.get((sid, busiest), 0.0)
        if rate <= 0 or rate < min_gain:
            continue
        is_primary = shard.primary == busiest
        for target, after in load.items():
            peak = max(top - rate, after + rate)
            if target in shard.copies or top - peak < min_gain or after + rate >= top:
                continue
            if not nodes[target].has_room(table.load(target)):
                continue
            # the lower peak of the two ends, then the emptier target
            key = (not is_primary, peak, after + rate, sid, target)
            if best is None or key < best[0]:
                best = key, Move(sid, busiest, target, is_primary, LOAD_REASON)
    return None if best is None else best[1]
