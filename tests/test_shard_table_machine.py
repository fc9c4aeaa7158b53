"""The shard table under random cluster histories (a Hypothesis state machine).

Each rule is something that happens to a cluster; afterwards the machine does
what the coordinator does (reconcile, or rebalance when a node joins) and the
invariants check the table as users rely on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from torua.cluster import (
    Move,
    NodeState,
    PlacementConflict,
    PlacementError,
    ShardTable,
    UnknownNode,
    UnknownShard,
    assign_primary,
    rebalance,
    reconcile,
    target_copies,
)

capacities = st.none() | st.integers(min_value=0, max_value=12)


class ShardTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, NodeState] = {}
        self.table = ShardTable(1, 1)
        self.joined = 0

    @initialize(
        num_shards=st.integers(min_value=1, max_value=24),
        replication=st.integers(min_value=1, max_value=3),
        first=st.lists(capacities, min_size=0, max_size=3),
    )
    def create(self, num_shards: int, replication: int, first: list[int | None]) -> None:
        self.table = ShardTable(num_shards, replication)
        for capacity in first:
            self._add_node(capacity)
        self.apply(rebalance)

    # -- helpers --

    def _add_node(self, capacity: int | None) -> str:
        self.joined += 1
        node = f"n{self.joined}"
        self.nodes[node] = NodeState(node, live=True, capacity=capacity)
        return node

    def _set(self, node: str, **changes: object) -> None:
        old = self.nodes[node]
        fields: dict[str, Any] = {
            "live": old.live,
            "leaving": old.leaving,
            "capacity": old.capacity,
        }
        fields.update(changes)
        self.nodes[node] = NodeState(node, **fields)

    def apply(self, plan: Callable[[ShardTable, dict[str, NodeState]], list[Move]]) -> list[Move]:
        """Run a placement function, checking what holds for every one of them."""
        before = self.table.copy()
        moves = plan(self.table, self.nodes)
        replay = before.copy()
        for move in moves:
            replay.apply(move)
        assert replay == self.table, "replaying the moves must give the same table"
        copies_moved = [(m.shard_id, m.source) for m in moves if m.source and m.kind != "promote"]
        assert len(copies_moved) == len(set(copies_moved)), "a copy moved twice in one call"
        assert reconcile(self.table.copy(), self.nodes) == [], "a repaired table needs no repair"
        return moves

    def pick(self, data: st.DataObject, which: Callable[[NodeState], bool]) -> str:
        return data.draw(st.sampled_from(sorted(n for n, s in self.nodes.items() if which(s))))

    def has(self, which: Callable[[NodeState], bool]) -> bool:
        return any(which(s) for s in self.nodes.values())

    def accepting(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s.accepting)

    def assert_balanced(self) -> None:
        accepting = self.accepting()
        if not accepting:
            return
        heaviest = max(self.table.load(n) for n in accepting)
        for node in accepting:
            load = self.table.load(node)
            if self.nodes[node].has_room(load):
                assert heaviest - load <= 1, f"{node} holds {load}, another holds {heaviest}"

    # -- what happens to a cluster --

    @precondition(lambda self: len(self.nodes) < 7)
    @rule(capacity=capacities)
    def join(self, capacity: int | None) -> None:
        self._add_node(capacity)
        self.apply(rebalance)
        self.assert_balanced()

    @precondition(lambda self: self.has(lambda s: s.live))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        self._set(self.pick(data, lambda s: s.live), live=False)
        self.apply(reconcile)

    @precondition(lambda self: self.has(lambda s: not s.live))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        node = self.pick(data, lambda s: not s.live)
        before = self.table.copy()
        self._set(node, live=True)
        moves = self.apply(reconcile)
        for move in moves:
            assert move.kind == "add", f"recovery moved an existing copy: {move}"
            if move.primary:
                assert not before.shards[move.shard_id].copies, f"a primary moved: {move}"

    @precondition(lambda self: any(self.table.load(n) == 0 for n in self.nodes))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        idle = sorted(n for n in self.nodes if self.table.load(n) == 0)
        del self.nodes[data.draw(st.sampled_from(idle))]
        self.apply(reconcile)

    @precondition(lambda self: bool(self.nodes))
    @rule(data=st.data(), leaving=st.booleans())
    def set_leaving(self, data: st.DataObject, leaving: bool) -> None:
        self._set(self.pick(data, lambda s: True), leaving=leaving)
        self.apply(reconcile)

    @precondition(lambda self: bool(self.nodes))
    @rule(data=st.data(), capacity=capacities)
    def set_capacity(self, data: st.DataObject, capacity: int | None) -> None:
        self._set(self.pick(data, lambda s: True), capacity=capacity)
        self.apply(reconcile)

    @rule()
    def operator_rebalances(self) -> None:
        self.apply(rebalance)
        self.assert_balanced()
        assert rebalance(self.table.copy(), self.nodes) == [], "rebalance must settle at once"

    @precondition(lambda self: any(len(s.copies) > 1 for s in self.table.shards))
    @rule(data=st.data())
    def miss_a_write(self, data: st.DataObject) -> None:
        """A copy falls behind, as when one replica fails a write."""
        shard = data.draw(st.sampled_from([s for s in self.table.shards if len(s.copies) > 1]))
        shard.in_sync.discard(data.draw(st.sampled_from(shard.copies)))

    @rule(data=st.data())
    def catch_up(self, data: st.DataObject) -> None:
        shard = data.draw(st.sampled_from(self.table.shards))
        shard.in_sync = set(shard.copies)

    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        shard_id = data.draw(st.integers(min_value=-1, max_value=self.table.num_shards))
        node_id = data.draw(st.sampled_from([*sorted(self.nodes), "ghost"]))
        node = self.nodes.get(node_id)
        before = self.table.copy()
        try:
            moves = assign_primary(self.table, shard_id, node_id, self.nodes)
        except PlacementError as exc:
            assert self.table == before, "a refused assignment changed the table"
            shard = before.shards[shard_id] if 0 <= shard_id < before.num_shards else None
            if shard is None:
                assert isinstance(exc, UnknownShard)
            elif node is None:
                assert isinstance(exc, UnknownNode)
            else:
                assert isinstance(exc, PlacementConflict)
                assert (
                    not node.accepting
                    or (node_id in shard.copies and node_id not in shard.in_sync)
                    or (node_id not in shard.copies and not node.has_room(before.load(node_id)))
                )
            return
        assert node is not None and node.accepting
        assert self.table.shards[shard_id].primary == node_id
        assert len(moves) <= 1
        replay = before.copy()
        for move in moves:
            replay.apply(move)
        assert replay == self.table
        self.apply(reconcile)  # nothing to repair, but the coordinator would ask

    # -- what users rely on --

    @invariant()
    def well_formed(self) -> None:
        self.table.validate()
        for shard in self.table.shards:
            assert shard.primary == (shard.copies[0] if shard.copies else None)
            assert shard.in_sync <= set(shard.copies)

    @invariant()
    def copies_only_on_usable_nodes_within_capacity(self) -> None:
        for shard in self.table.shards:
            for node in shard.copies:
                assert node in self.nodes and self.nodes[node].accepting, (shard, node)
        for node, state in self.nodes.items():
            assert state.capacity is None or self.table.load(node) <= state.capacity

    @invariant()
    def every_shard_has_its_copies_where_there_is_room(self) -> None:
        want = target_copies(self.table, self.nodes)
        for shard in self.table.shards:
            if len(shard.copies) < want:
                lacking = [n for n in self.accepting() if n not in shard.copies]
                assert all(not self.nodes[n].has_room(self.table.load(n)) for n in lacking)
            assert len(shard.copies) <= want


TestShardTable = ShardTableMachine.TestCase
TestShardTable.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
