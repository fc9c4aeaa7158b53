"""Shard copies and the writes they hold, under random cluster histories.

``test_shard_table_machine`` checks where copies go; this machine checks what
happens to the data when they go. It models the coordinator at the level of
:mod:`torua.cluster.handover`: placement followed by ``settle`` (as
``Redistributor.apply`` does), writes to the authoritative and filling copies
(``Router.write``), fills, handover releases and merges of lost copies
(``Mover``), next to a model of acknowledged writes: which write ids each node
physically holds for each shard (data stays on a dead node and comes back
with it) and which write ids were acknowledged. The invariants are the
promises of LESSONS "Moving shards" and "Testing the promises": no
acknowledged write is lost, and a shard served by a live copy stays served.

Nodes are live or dead (``is_up`` = registered and live); the coordinator's
"unknown" status is modelled only as its effect: placement deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from torua.cluster import (
    Move,
    NodeState,
    PlacementError,
    ShardTable,
    assign_primary,
    rebalance,
    reconcile,
)
from torua.cluster.handover import authoritative, handover_done, settle

Plan = Callable[[ShardTable, Mapping[str, NodeState]], list[Move]]

capacities = st.none() | st.integers(min_value=0, max_value=4)


class CopiesMachine(RuleBasedStateMachine):
    """The coordinator's data bookkeeping, with the writes it acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.table = ShardTable(1, 1)
        self.nodes: dict[str, NodeState] = {}
        self.retiring: dict[int, set[str]] = {}
        self.lost: dict[int, set[str]] = {}
        self.data: dict[str, dict[int, set[int]]] = {}  # node -> shard -> write ids held
        self.acked: dict[int, set[int]] = {}  # shard -> write ids acknowledged
        # Acknowledged writes the authoritative copies may lack because the shard
        # lost every copy holding them; they must sit on a node in ``lost``.
        self.excused: dict[int, set[int]] = {}
        self.missed: set[tuple[int, str]] = set()  # filling copies that failed a write
        self.fills: dict[tuple[int, str], tuple[str, frozenset[int]]] = {}  # donor, its data
        self.deferred = False  # a node holding copies is "unknown": placement waits
        self.pending: str | None = None
        self.joined = 0
        self.writes = 0
        self.killed: set[str] = set()  # nodes the current step killed
        self.served: dict[int, set[str]] = {}  # live authoritative copies before the step

    # -- the model's vocabulary --

    def is_up(self, node: str) -> bool:
        state = self.nodes.get(node)
        return state is not None and state.live

    def auth(self, shard_id: int) -> list[str]:
        shard = self.table.shards[shard_id]
        return authoritative(shard, self.retiring.get(shard_id, set()), self.is_up)

    def held(self, node: str, shard_id: int) -> set[int]:
        return self.data.get(node, {}).get(shard_id, set())

    def store(self, node: str, shard_id: int) -> set[int]:
        return self.data[node].setdefault(shard_id, set())

    def drop(self, node: str, shard_id: int) -> None:
        """Mover._drop_copy: a live node no longer holding the shard deletes it."""
        shard = self.table.shards[shard_id]
        if node in shard.copies or node in self.retiring.get(shard_id, set()):
            return
        if self.is_up(node):
            self.data[node].pop(shard_id, None)

    def _set(self, node: str, **changes: object) -> None:
        old = self.nodes[node]
        fields: dict[str, object] = {
            "live": old.live,
            "leaving": old.leaving,
            "capacity": old.capacity,
        }
        fields.update(changes)
        self.nodes[node] = NodeState(node, **fields)  # type: ignore[arg-type]

    # -- the coordinator, as Redistributor.apply and handle/replan drive placement --

    def apply(self, plan: Plan) -> list[Move]:
        """Run one placement rule, then settle each shard it touched."""
        shards = self.table.shards
        before = {s.shard_id: (list(s.copies), set(s.in_sync)) for s in shards}
        moves = plan(self.table, self.nodes)
        touched = {m.shard_id for m in moves}
        for shard_id in sorted(touched):
            old_copies, old_in_sync = before[shard_id]
            result = settle(
                shards[shard_id],
                old_copies,
                old_in_sync,
                self.retiring.get(shard_id, set()),
                self.is_up,
            )
            if result.retiring:
                self.retiring[shard_id] = result.retiring
            else:
                self.retiring.pop(shard_id, None)
            if result.lost:
                self.lost.setdefault(shard_id, set()).update(result.lost)
                # The new copies start empty: what was acknowledged so far now
                # lives only on the lost copies, until they are merged back.
                self.excused[shard_id] |= self.acked[shard_id]
        return moves

    def event(self, wanted: str) -> None:
        """Redistributor.handle: a node event asks for a rule, maybe deferred."""
        if wanted == "rebalance" or self.pending != "rebalance":
            self.pending = wanted
        if not self.deferred:
            self.run_pending()

    def run_pending(self) -> None:
        rule_, self.pending = self.pending, None
        if rule_ is not None:
            self.apply(rebalance if rule_ == "rebalance" else reconcile)

    # -- what happens to a cluster (plain methods, so regressions can replay them) --

    def setup(self, num_shards: int, replication: int, first: list[int | None]) -> None:
        self.table = ShardTable(num_shards, replication)
        self.acked = {i: set() for i in range(num_shards)}
        self.excused = {i: set() for i in range(num_shards)}
        for capacity in first:
            self.do_join(capacity)

    def do_join(self, capacity: int | None = None) -> str:
        self.joined += 1
        node = f"n{self.joined}"
        self.nodes[node] = NodeState(node, live=True, capacity=capacity)
        self.data[node] = {}
        self.event("rebalance")  # a new node gets its share
        return node

    def do_fail(self, node: str) -> None:
        self._set(node, live=False)
        self.killed.add(node)
        self.event("reconcile")

    def do_recover(self, node: str) -> None:
        self._set(node, live=True)
        self.event("reconcile")

    def do_remove(self, node: str) -> None:
        """DELETE /nodes/<id>: refused while it holds or hands over a copy."""
        assert self.table.load(node) == 0
        assert not any(node in nodes for nodes in self.retiring.values())
        del self.nodes[node]
        del self.data[node]  # gone for good
        for shard_id, lost in self.lost.items():
            lost.discard(node)  # its data is declared gone
            gone = {w for w in self.excused[shard_id] if not self.on_lost(shard_id, w)}
            self.excused[shard_id] -= gone
            self.acked[shard_id] -= gone  # the operator gave these writes up
        self.event("reconcile")

    def on_lost(self, shard_id: int, write: int) -> bool:
        return any(write in self.held(n, shard_id) for n in self.lost.get(shard_id, ()))

    def do_set_leaving(self, node: str, leaving: bool) -> None:
        self._set(node, leaving=leaving)
        self.event("reconcile")

    def do_set_capacity(self, node: str, capacity: int | None) -> None:
        self._set(node, capacity=capacity)
        self.event("reconcile")

    def do_defer(self) -> None:
        self.deferred = True

    def do_resume(self) -> None:
        self.deferred = False
        self.run_pending()

    def do_rebalance(self) -> None:
        """POST /rebalance runs at once, deferred or not."""
        self.apply(rebalance)

    def do_assign(self, shard_id: int, node: str) -> bool:
        before = self.table.copy()
        try:
            self.apply(lambda table, nodes: assign_primary(table, shard_id, node, nodes))
        except PlacementError:
            assert self.table == before, "a refused assignment changed the table"
            return False
        assert self.table.shards[shard_id].primary == node
        return True

    def do_write(self, shard_id: int, failing: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        """Router.write: 'acked', 'unavailable' (503) or 'error'."""
        shard = self.table.shards[shard_id]
        targets = self.auth(shard_id)
        if not targets:
            return "unavailable"
        filling = [
            n for n in shard.copies
            if n not in shard.in_sync and self.is_up(n) and n not in targets
        ]
        self.writes += 1
        write = self.writes
        for node in targets + filling:
            if node not in failing:
                self.store(node, shard_id).add(write)
        self.missed.update((shard_id, n) for n in filling if n in failing)
        behind = [n for n in targets if n in failing]
        if len(behind) == len(targets):
            return "error"
        for node in behind:
            shard.in_sync.discard(node)
            self.retiring.get(shard_id, set()).discard(node)
        self.acked[shard_id].add(write)
        return "acked"

    def fill_wanted(self, shard_id: int, node: str) -> bool:
        """Mover._still_wanted."""
        shard = self.table.shards[shard_id]
        return node in shard.copies and node not in shard.in_sync and self.is_up(node)

    def do_start_fill(self, shard_id: int, node: str) -> bool:
        """Mover._fill up to the export: forget missed writes, pick the donor."""
        if not self.fill_wanted(shard_id, node):
            return False
        self.missed.discard((shard_id, node))
        donors = [n for n in self.auth(shard_id) if n != node]
        if not donors:
            return False
        self.fills[(shard_id, node)] = (donors[0], frozenset(self.held(donors[0], shard_id)))
        return True

    def do_finish_fill(self, shard_id: int, node: str) -> bool:
        """The pages arrive (what the donor held at the start and still holds),
        then the copy joins the in-sync set unless it missed a write meanwhile."""
        donor, pages = self.fills.pop((shard_id, node))
        if not self.is_up(donor) or not self.fill_wanted(shard_id, node):
            return False
        self.store(node, shard_id).update(pages & self.held(donor, shard_id))
        if (shard_id, node) in self.missed:
            self.missed.discard((shard_id, node))
            return False
        self.table.shards[shard_id].in_sync.add(node)
        return True

    def do_fill(self, shard_id: int, node: str) -> bool:
        return self.do_start_fill(shard_id, node) and self.do_finish_fill(shard_id, node)

    def do_release(self, shard_id: int) -> bool:
        """Mover._release_finished_handovers, for one shard."""
        nodes = self.retiring.get(shard_id)
        if nodes is None:
            return False
        if not nodes:
            del self.retiring[shard_id]
            return False
        if not handover_done(self.table.shards[shard_id]):
            return False
        del self.retiring[shard_id]
        for node in nodes:
            self.drop(node, shard_id)
        return True

    def do_merge(self, shard_id: int, node: str) -> bool:
        """Mover._merge: a returning lost copy goes into the in-sync copies."""
        assert node in self.lost[shard_id] and self.is_up(node)
        shard = self.table.shards[shard_id]
        targets = [n for n in shard.copies if n in shard.in_sync and n != node]
        if not targets:
            return False
        for target in targets:
            if not self.is_up(target):
                return False  # NodeUnreachable part-way: retried later
            self.store(target, shard_id).update(self.held(node, shard_id))
        self.drop(node, shard_id)
        self.lost[shard_id].discard(node)
        if not self.lost[shard_id]:
            self.excused[shard_id] = set()  # complete again: everything must be back
        return True

    # -- the invariants --

    def check(self) -> None:
        self.table.validate()  # in_sync within copies, no node twice
        for shard in self.table.shards:
            sid = shard.shard_id
            retiring = self.retiring.get(sid, set())
            lost = self.lost.get(sid, set())
            holders = shard.in_sync | retiring
            served = self.auth(sid)
            # 1. well formed
            assert shard.primary == (shard.copies[0] if shard.copies else None)
            assert not retiring & set(shard.copies), f"shard {sid}: retiring {retiring} in copies"
            assert retiring <= self.nodes.keys(), f"shard {sid}: unregistered retiring copy"
            # 2. every authoritative copy, live or dead, holds every acknowledged
            # write (but those lost with every copy that held them).
            owed = self.acked[sid] - self.excused[sid]
            for node in sorted(holders):
                missing = owed - self.held(node, sid)
                assert not missing, (
                    f"shard {sid}: authoritative copy on {node} "
                    f"({'in sync' if node in shard.in_sync else 'retiring'}, "
                    f"{'live' if self.is_up(node) else 'dead'}) lacks acknowledged {sorted(missing)}"
                )
            # 3. a shard served by a live copy stays served unless that node died.
            if self.served.get(sid, set()) - self.killed:
                assert served, (
                    f"shard {sid} lost its last live authoritative copy "
                    f"({sorted(self.served[sid])}) though none of them died"
                )
            # 4. a shard with nothing lost is complete: every acknowledged write is
            # on every live authoritative copy (a read finds it), and once placement
            # has run some live copy serves it; while placement is deferred the
            # write waits on a registered authoritative copy of a dead node.
            if not lost:
                assert not self.excused[sid]
                for write in sorted(self.acked[sid]):
                    assert all(write in self.held(n, sid) for n in served)
                    assert any(write in self.held(n, sid) for n in holders), (
                        f"shard {sid}: acknowledged write {write} is on no authoritative copy"
                    )
                if self.acked[sid] and self.pending is None:
                    assert served, f"shard {sid} has acknowledged writes but nothing serves it"
            # 5. a lost copy is on a registered node (dead, or live with a merge to
            # run), and every write it excuses is still on one of them.
            assert lost <= self.nodes.keys(), f"shard {sid}: lost copy on an unregistered node"
            for write in sorted(self.excused[sid]):
                assert self.on_lost(sid, write), (
                    f"shard {sid}: acknowledged write {write} was lost with no copy to return it"
                )
        self.served = {s.shard_id: set(self.auth(s.shard_id)) for s in self.table.shards}
        self.killed = set()

    # -- Hypothesis glue --

    def pick(self, data: st.DataObject, nodes: list[str] | set[str]) -> str:
        return data.draw(st.sampled_from(sorted(nodes)))

    def nodes_where(self, which: Callable[[NodeState], bool]) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if which(s))

    @initialize(
        num_shards=st.integers(min_value=1, max_value=4),
        replication=st.integers(min_value=1, max_value=3),
        first=st.lists(capacities, min_size=1, max_size=3),
    )
    def create(self, num_shards: int, replication: int, first: list[int | None]) -> None:
        self.setup(num_shards, replication, first)

    @invariant()
    def promises(self) -> None:
        self.check()

    @precondition(lambda self: len(self.nodes) < 6)
    @rule(capacity=capacities)
    def join(self, capacity: int | None) -> None:
        self.do_join(capacity)

    @precondition(lambda self: self.nodes_where(lambda s: s.live))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        self.do_fail(self.pick(data, self.nodes_where(lambda s: s.live)))

    @precondition(lambda self: self.nodes_where(lambda s: not s.live))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        self.do_recover(self.pick(data, self.nodes_where(lambda s: not s.live)))

    def removable(self) -> list[str]:
        handing_over = {n for nodes in self.retiring.values() for n in nodes}
        return [n for n in self.nodes if self.table.load(n) == 0 and n not in handing_over]

    @precondition(lambda self: self.removable())
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        self.do_remove(self.pick(data, self.removable()))

    @precondition(lambda self: self.nodes)
    @rule(data=st.data(), leaving=st.booleans())
    def set_leaving(self, data: st.DataObject, leaving: bool) -> None:
        self.do_set_leaving(self.pick(data, self.nodes.keys()), leaving)

    @precondition(lambda self: self.nodes)
    @rule(data=st.data(), capacity=capacities)
    def set_capacity(self, data: st.DataObject, capacity: int | None) -> None:
        self.do_set_capacity(self.pick(data, self.nodes.keys()), capacity)

    @precondition(lambda self: not self.deferred)
    @rule()
    def defer(self) -> None:
        self.do_defer()

    @precondition(lambda self: self.deferred)
    @rule()
    def resume(self) -> None:
        self.do_resume()

    @rule()
    def operator_rebalances(self) -> None:
        self.do_rebalance()

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        shard_id = data.draw(st.integers(min_value=0, max_value=self.table.num_shards - 1))
        self.do_assign(shard_id, self.pick(data, self.nodes.keys()))

    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        shard_id = data.draw(st.integers(min_value=0, max_value=self.table.num_shards - 1))
        shard = self.table.shards[shard_id]
        reachable = sorted(set(self.auth(shard_id)) | {n for n in shard.copies if self.is_up(n)})
        failing: set[str] = set()
        if reachable:
            failing = data.draw(st.sets(st.sampled_from(reachable)) | st.just(set()))
        self.do_write(shard_id, failing)

    def fillable(self) -> list[tuple[int, str]]:
        return [
            (s.shard_id, n)
            for s in self.table.shards
            for n in s.copies
            if (s.shard_id, n) not in self.fills and self.fill_wanted(s.shard_id, n)
        ]

    @precondition(lambda self: self.fillable())
    @rule(data=st.data())
    def fill(self, data: st.DataObject) -> None:
        self.do_fill(*data.draw(st.sampled_from(self.fillable())))

    @precondition(lambda self: self.fillable())
    @rule(data=st.data())
    def start_fill(self, data: st.DataObject) -> None:
        self.do_start_fill(*data.draw(st.sampled_from(self.fillable())))

    @precondition(lambda self: self.fills)
    @rule(data=st.data())
    def finish_fill(self, data: st.DataObject) -> None:
        self.do_finish_fill(*data.draw(st.sampled_from(sorted(self.fills))))

    @precondition(lambda self: self.retiring)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.do_release(data.draw(st.sampled_from(sorted(self.retiring))))

    def mergeable(self) -> list[tuple[int, str]]:
        return [(s, n) for s, nodes in self.lost.items() for n in sorted(nodes) if self.is_up(n)]

    @precondition(lambda self: self.mergeable())
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        self.do_merge(*data.draw(st.sampled_from(sorted(self.mergeable()))))


TestCopies = CopiesMachine.TestCase
TestCopies.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_placeholder() -> None:
    pytest.skip("regressions go here")
