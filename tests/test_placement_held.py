"""Placement around a node that is down but expected back (``NodeState.held``)."""

from __future__ import annotations

from torua.cluster import NodeState, ShardTable, rebalance, reconcile


def _table() -> ShardTable:
    table = ShardTable(4, 2)
    nodes = {n: NodeState(n, live=True) for n in ("a", "b", "c")}
    rebalance(table, nodes)
    for shard in table.shards:
        shard.in_sync = set(shard.copies)
    return table


def test_a_held_node_keeps_its_copies_but_not_its_leads() -> None:
    table = _table()
    before = {s.shard_id: set(s.copies) for s in table.shards}
    led = [s.shard_id for s in table.shards if s.primary == "a"]
    assert led
    nodes = {
        "a": NodeState("a", live=False, held=True),
        "b": NodeState("b", live=True),
        "c": NodeState("c", live=True),
    }
    moves = reconcile(table, nodes)
    assert {s.shard_id: set(s.copies) for s in table.shards} == before
    assert all(m.reason == "promote" for m in moves)
    assert all(table.shards[s].primary != "a" for s in led)
    rebalance(table, nodes)  # an operator's rebalance moves nothing off it either
    assert {s.shard_id: set(s.copies) for s in table.shards} == before


def test_without_the_hold_the_copies_are_rebuilt() -> None:
    table = _table()
    nodes = {
        "a": NodeState("a", live=False),
        "b": NodeState("b", live=True),
        "c": NodeState("c", live=True),
    }
    reconcile(table, nodes)
    assert all("a" not in s.copies for s in table.shards)


def test_a_held_node_that_is_leaving_is_not_held() -> None:
    table = _table()
    nodes = {
        "a": NodeState("a", live=False, leaving=True, held=True),
        "b": NodeState("b", live=True),
        "c": NodeState("c", live=True),
    }
    reconcile(table, nodes)
    assert all("a" not in s.copies for s in table.shards)
