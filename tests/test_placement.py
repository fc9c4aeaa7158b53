"""Placement examples an operator would notice: where shards land and what moves when."""

from __future__ import annotations

import json

import pytest

from torua.cluster import (
    Move,
    NodeState,
    PlacementConflict,
    ShardTable,
    UnknownNode,
    UnknownShard,
    assign_primary,
    cluster_health,
    rebalance,
    reconcile,
)


def cluster(*ids: str, **capacity: int) -> dict[str, NodeState]:
    return {n: NodeState(n, live=True, capacity=capacity.get(n)) for n in ids}


def loads(table: ShardTable, nodes: dict[str, NodeState]) -> dict[str, int]:
    return {n: table.load(n) for n in nodes}


def primaries(table: ShardTable, nodes: dict[str, NodeState]) -> dict[str, int]:
    return {n: len(table.primaries_on(n)) for n in nodes}


def placed(num_shards: int, r: int, nodes: dict[str, NodeState]) -> ShardTable:
    table = ShardTable(num_shards, r)
    reconcile(table, nodes)
    return table


def replayed(before: ShardTable, moves: list[Move]) -> ShardTable:
    table = before.copy()
    for move in moves:
        table.apply(move)
    return table


def test_sixteen_shards_one_copy_spread_over_three_nodes() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = ShardTable(16, 1)
    moves = reconcile(table, nodes)
    assert loads(table, nodes) == {"n1": 6, "n2": 5, "n3": 5}
    assert all(m.kind == "add" and m.primary and m.reason == "assign" for m in moves)
    assert [len(s.copies) for s in table.shards] == [1] * 16
    assert cluster_health(table, nodes) == "green"


def test_sixteen_shards_two_copies_spread_over_three_nodes() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    assert sorted(loads(table, nodes).values()) == [10, 11, 11]
    assert sorted(primaries(table, nodes).values()) == [5, 5, 6]
    for shard in table.shards:
        assert len(set(shard.copies)) == 2
        assert shard.in_sync == set(shard.copies)
        assert shard.state(nodes) == "active"


def test_replication_factor_is_capped_by_usable_nodes() -> None:
    nodes = cluster("n1", "n2")
    table = placed(16, 3, nodes)
    assert all(sorted(s.copies) == ["n1", "n2"] for s in table.shards)
    assert cluster_health(table, nodes) == "yellow"  # R as configured is 3


def test_one_node_with_two_replicas_is_yellow() -> None:
    nodes = cluster("n1")
    assert cluster_health(placed(4, 2, nodes), nodes) == "yellow"


def test_capacity_is_respected_and_the_rest_stays_unassigned() -> None:
    nodes = cluster("n1", "n2", n1=5, n2=5)
    table = placed(16, 1, nodes)
    assert loads(table, nodes) == {"n1": 5, "n2": 5}
    unassigned = [s.shard_id for s in table.shards if s.state(nodes) == "unassigned"]
    assert len(unassigned) == 6
    assert cluster_health(table, nodes) == "red"


def test_primaries_are_placed_before_second_copies_when_room_is_short() -> None:
    nodes = cluster("n1", "n2", n1=5, n2=5)
    table = placed(8, 2, nodes)
    assert all(s.copies for s in table.shards)  # every shard readable before any is doubled
    assert loads(table, nodes) == {"n1": 5, "n2": 5}


def test_lowering_capacity_sheds_replicas_first_and_rehomes_them() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(6, 2, nodes)
    held_primaries = table.primaries_on("n1")
    nodes["n1"] = NodeState("n1", live=True, capacity=2)
    nodes["n4"] = NodeState("n4", live=True)
    moves = reconcile(table, nodes)
    assert table.load("n1") == 2
    assert set(table.primaries_on("n1")) == set(held_primaries)  # replicas went first
    assert moves and all(m.reason == "capacity" and m.source == "n1" for m in moves)
    assert all(m.target == "n4" for m in moves)  # least loaded


def test_copies_never_land_on_unhealthy_or_leaving_nodes() -> None:
    nodes = cluster("n1")
    nodes["down"] = NodeState("down", live=False)
    nodes["leaving"] = NodeState("leaving", live=True, leaving=True)
    table = placed(8, 3, nodes)
    assert all(s.copies == ["n1"] for s in table.shards)
    assert table.load("down") == table.load("leaving") == 0


def test_failure_promotes_the_in_sync_replica_and_rebuilds_elsewhere() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    led = table.primaries_on("n1")
    survivors = {i: table.shards[i].copies[1] for i in led}
    nodes["n1"] = NodeState("n1", live=False)
    moves = reconcile(table, nodes)
    assert table.load("n1") == 0
    for i in led:
        assert table.shards[i].primary == survivors[i]
    promotions = [m for m in moves if m.kind == "promote"]
    assert {m.shard_id for m in promotions} == set(led)
    assert moves[: len(promotions)] == promotions  # writes find a primary first
    rest = moves[len(promotions) :]
    assert all(m.kind == "relocate" and m.source == "n1" and m.reason == "failure" for m in rest)
    assert cluster_health(table, nodes) == "green"


def test_failure_prefers_an_in_sync_replica_over_a_lagging_one() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = ShardTable(1, 3)
    table.shards[0].copies = ["n1", "n2", "n3"]
    table.shards[0].in_sync = {"n1", "n3"}
    nodes["n1"] = NodeState("n1", live=False)
    moves = reconcile(table, nodes)
    assert table.shards[0].copies == ["n3", "n2"]
    assert moves == [
        Move(0, "n1", "n3", True, "promote"),
        Move(0, "n1", None, False, "failure"),
    ]
    assert table.shards[0].state(nodes) == "recovering"


def test_sole_copy_failure_gets_a_new_primary_on_a_healthy_node() -> None:
    nodes = cluster("n1", "n2")
    table = placed(4, 1, nodes)
    lost = table.copies_on("n1")
    nodes["n1"] = NodeState("n1", live=False)
    moves = reconcile(table, nodes)
    assert moves == [Move(i, "n1", "n2", True, "failure") for i in lost]
    assert all(s.copies == ["n2"] for s in table.shards)


def test_copies_on_a_node_that_is_gone_from_the_cluster_move_off() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(6, 1, nodes)
    held = table.copies_on("n3")
    del nodes["n3"]
    moves = reconcile(table, nodes)
    assert [(m.shard_id, m.source, m.reason) for m in moves] == [(i, "n3", "removed") for i in held]
    assert table.load("n3") == 0


def test_a_failed_copy_travels_once_even_when_a_rebalance_follows() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    before = table.copy()
    nodes["n1"] = NodeState("n1", live=False)
    nodes["n4"] = NodeState("n4", live=True)
    moves = rebalance(table, nodes)
    copies_moved = [(m.shard_id, m.source) for m in moves if m.kind in ("relocate", "drop")]
    assert len(copies_moved) == len(set(copies_moved))
    assert {m.reason for m in moves if m.source == "n1" and m.kind != "promote"} == {"failure"}
    assert sorted(loads(table, nodes).values()) == [0, 10, 11, 11]
    assert replayed(before, moves) == table


def test_recovered_node_gets_nothing_moved_back() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    nodes["n1"] = NodeState("n1", live=False)
    reconcile(table, nodes)
    nodes["n1"] = NodeState("n1", live=True)
    assert reconcile(table, nodes) == []
    assert table.load("n1") == 0


def test_recovered_node_only_refills_shards_short_of_copies() -> None:
    nodes = cluster("n1", "n2", "n3", n2=4, n3=4)
    table = placed(8, 2, nodes)
    nodes["n1"] = NodeState("n1", live=False)
    reconcile(table, nodes)
    short = {s.shard_id for s in table.shards if len(s.copies) < 2}
    assert short  # n2 and n3 had no room for every second copy
    before = table.copy()
    nodes["n1"] = NodeState("n1", live=True)
    moves = reconcile(table, nodes)
    assert {m.shard_id for m in moves} == short
    assert all(m.kind == "add" and m.target == "n1" for m in moves)
    for old, new in zip(before.shards, table.shards, strict=True):
        if old.copies:  # no primary returns; only a shard with no copy at all gets one
            assert new.primary == old.primary


def test_rebalance_makes_room_for_a_shard_greedy_filling_left_short() -> None:
    nodes = cluster("n1", "n2", "n3", n2=4, n3=4)
    table = placed(8, 2, nodes)
    assert [s.shard_id for s in table.shards if len(s.copies) < 2] == [6]
    assert cluster_health(table, nodes) == "yellow"
    rebalance(table, nodes)
    assert loads(table, nodes) == {"n1": 8, "n2": 4, "n3": 4}
    assert cluster_health(table, nodes) == "green"


def test_new_node_gets_its_share_on_rebalance() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    before = table.copy()
    nodes["n4"] = NodeState("n4", live=True)
    assert reconcile(table, nodes) == []  # every shard has its copies: nothing to repair
    moves = rebalance(table, nodes)
    assert loads(table, nodes) == {"n1": 8, "n2": 8, "n3": 8, "n4": 8}
    assert primaries(table, nodes) == {"n1": 4, "n2": 4, "n3": 4, "n4": 4}
    relocations = [m for m in moves if m.kind == "relocate"]
    assert len(relocations) == 8  # no copy travels further than it must
    assert all(m.target == "n4" and not m.primary for m in relocations)  # replicas preferred
    assert replayed(before, moves) == table
    assert rebalance(table, nodes) == []


def test_rebalance_holds_a_small_node_at_its_capacity() -> None:
    nodes = cluster("n1", "n2")
    table = placed(16, 2, nodes)
    nodes["small"] = NodeState("small", live=True, capacity=3)
    nodes["big"] = NodeState("big", live=True)
    rebalance(table, nodes)
    assert loads(table, nodes) == {"n1": 10, "n2": 10, "small": 3, "big": 9}


def test_rebalance_repairs_first() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(6, 1, nodes)
    nodes["n3"] = NodeState("n3", live=True, leaving=True)
    moves = rebalance(table, nodes)
    assert table.load("n3") == 0
    assert [m.reason for m in moves if m.source == "n3"] == ["leaving", "leaving"]
    assert loads(table, nodes) == {"n1": 3, "n2": 3, "n3": 0}


def test_assign_primary_promotes_a_replica_in_place() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(3, 2, nodes)
    replica = table.shards[0].replicas[0]
    old = table.shards[0].primary
    moves = assign_primary(table, 0, replica, nodes)
    assert moves == [Move(0, old, replica, True, "promote")]
    assert table.shards[0].copies == [replica, old]
    assert assign_primary(table, 0, replica, nodes) == []  # already there


def test_assign_primary_moves_the_primary_copy_to_another_node() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(3, 2, nodes)
    shard = table.shards[0]
    outsider = next(n for n in nodes if n not in shard.copies)
    old, replica = shard.copies
    assert assign_primary(table, 0, outsider, nodes) == [Move(0, old, outsider, True, "assign")]
    assert shard.copies == [outsider, replica]


@pytest.mark.parametrize(
    ("shard_id", "node_id", "error", "words"),
    [
        (-1, "n2", UnknownShard, "no shard -1"),
        (4, "n2", UnknownShard, "from 0 to 3"),
        (0, "nope", UnknownNode, "'nope'"),
        (0, "down", PlacementConflict, "not healthy"),
        (0, "leaving", PlacementConflict, "leaving"),
        (0, "full", PlacementConflict, "full"),
        (0, "lagging", PlacementConflict, "catching up"),
    ],
)
def test_assign_primary_refuses_clearly(
    shard_id: int, node_id: str, error: type[Exception], words: str
) -> None:
    nodes = cluster("n1", "n2", "full", "lagging", full=0)
    nodes["down"] = NodeState("down", live=False)
    nodes["leaving"] = NodeState("leaving", live=True, leaving=True)
    table = ShardTable(4, 2)
    table.shards[0].copies = ["n1", "lagging"]
    table.shards[0].in_sync = {"n1"}
    before = table.copy()
    with pytest.raises(error, match=words) as info:
        assign_primary(table, shard_id, node_id, nodes)
    assert isinstance(info.value, ValueError)
    assert table == before


def test_table_round_trips_through_json() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(16, 2, nodes)
    table.shards[3].in_sync.discard(table.shards[3].copies[1])
    data = json.loads(json.dumps(table.to_json()))
    assert ShardTable.from_json(data) == table
    assert data["shards"][0] == {
        "shard_id": 0,
        "copies": table.shards[0].copies,
        "in_sync": sorted(table.shards[0].in_sync),
    }


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("shards"),
        lambda d: d.update(num_shards=0),
        lambda d: d["shards"].pop(),
        lambda d: d["shards"][1].update(shard_id=0),
        lambda d: d["shards"][0].update(copies=["n1", "n1"]),
        lambda d: d["shards"][0].update(in_sync=["elsewhere"]),
        lambda d: d["shards"][0].update(copies="n1"),
    ],
)
def test_malformed_json_is_refused(mutate: object) -> None:
    data = placed(4, 2, cluster("n1", "n2")).to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError):
        ShardTable.from_json(data)


def test_moves_replay_and_stale_moves_are_refused() -> None:
    nodes = cluster("n1", "n2", "n3")
    table = placed(8, 2, nodes)
    before = table.copy()
    nodes["n2"] = NodeState("n2", live=False)
    moves = reconcile(table, nodes)
    assert replayed(before, moves) == table
    with pytest.raises(ValueError, match="stale"):
        table.apply(moves[-1])  # already applied


def test_shard_states() -> None:
    nodes = cluster("n1", "n2")
    nodes["down"] = NodeState("down", live=False)
    table = ShardTable(3, 2)
    table.shards[0].copies, table.shards[0].in_sync = ["n1", "n2"], {"n1", "n2"}
    table.shards[1].copies, table.shards[1].in_sync = ["n1", "n2"], {"n1"}
    table.shards[2].copies, table.shards[2].in_sync = ["down"], {"down"}
    assert [s.state(nodes) for s in table.shards] == ["active", "recovering", "unassigned"]
    assert cluster_health(table, nodes) == "red"
