"""Shard copies and the writes they hold, under random cluster histories.

``test_shard_table_machine`` checks where copies go; this machine checks what
happens to the data when they go. It drives the coordinator's real copy state
machine (:class:`torua.cluster.copies.Copies`) and the real placement rules
with every event the services feed it (placement decided, write outcome per
copy, fill done, merge done, handovers done, node lost its data, node
removed, node away within its delay, delay expired), and keeps beside it a
model of the data: which write ids each node
physically holds for each shard (data stays on a dead node and comes back
with it) and which write ids were acknowledged. Write ids are the writes'
versions, so a fill copies only the donor's writes above the point the
machine names (:meth:`Copies.catch_up_from`): a delta catch-up that starts too
late shows up as an in-sync copy lacking an acknowledged write. The invariants are the
promises: no acknowledged write is lost, no acknowledged write reads as a 404,
and a shard served by a live copy stays served.

What stays modelled here is the I/O around the machine: pages of a fill, the
write tracker's "missed while filling" notes, and the saves, which this model
treats as immediate (the durability order is tested in test_copy_lifecycle).
Nodes are live or dead (``is_up`` = registered and live); the coordinator's
"unknown" status is modelled only by its effect: placement deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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
from torua.cluster.copies import Copies
from torua.cluster.instructions import Announce, Drop, Restart

Plan = Callable[[ShardTable, Mapping[str, NodeState]], list[Move]]

capacities = st.none() | st.integers(min_value=0, max_value=4)


class CopiesMachine(RuleBasedStateMachine):
    """The coordinator's data bookkeeping, with the writes it acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = Copies(ShardTable(1, 1))
        self.nodes: dict[str, NodeState] = {}
        self.data: dict[str, dict[int, set[int]]] = {}  # node -> shard -> write ids held
        self.acked: dict[int, set[int]] = {}  # shard -> write ids acknowledged
        # Acknowledged writes the authoritative copies may lack because the shard
        # lost every copy holding them; they must sit on a node in ``lost``.
        self.excused: dict[int, set[int]] = {}
        self.missed: set[tuple[int, str]] = set()  # WriteTracker.note_missed
        self.fills: dict[tuple[int, str], tuple[str, frozenset[int]]] = {}  # donor, its data
        self.deferred = False  # a node holding copies is "unknown": placement waits
        self.pending: str | None = None
        self.joined = 0
        self.writes = 0
        # Versions taken by writes not sent yet: they land later than newer ones.
        self.reserved: list[int] = []
        self.killed: set[str] = set()  # nodes the current step killed
        self.served: dict[int, set[str]] = {}  # live authoritative copies before the step

    # -- the model's vocabulary --

    @property
    def table(self) -> ShardTable:
        return self.copies.table

    @property
    def retiring(self) -> dict[int, set[str]]:
        return self.copies.retiring

    @property
    def lost(self) -> dict[int, set[str]]:
        return self.copies.lost

    def is_up(self, node: str) -> bool:
        state = self.nodes.get(node)
        return state is not None and state.live

    def auth(self, shard_id: int) -> list[str]:
        return self.copies.authoritative(shard_id, self.is_up)

    def held(self, node: str, shard_id: int) -> set[int]:
        return self.data.get(node, {}).get(shard_id, set())

    def store(self, node: str, shard_id: int) -> set[int]:
        return self.data[node].setdefault(shard_id, set())

    def on_lost(self, shard_id: int, write: int) -> bool:
        return any(write in self.held(n, shard_id) for n in self.lost.get(shard_id, ()))

    def read(self, shard_id: int, write: int) -> str:
        """Router.get of the key a write set: 'found', 'missing' (404) or 'unavailable' (503)."""
        copies = self.auth(shard_id)
        if not copies:
            return "unavailable"
        if write in self.held(copies[0], shard_id):
            return "found"
        return "unavailable" if self.lost.get(shard_id) else "missing"

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
            "held": old.held,
        }
        fields.update(changes)
        self.nodes[node] = NodeState(node, **fields)  # type: ignore[arg-type]

    # -- placement, as Redistributor.apply and handle/replan drive it --

    def apply(self, plan: Plan) -> list[Move]:
        """Redistributor.apply: roll back dead fills, place, then settle every shard."""
        self.roll_back()
        shards = self.table.shards
        before = {s.shard_id: (list(s.copies), set(s.in_sync)) for s in shards}
        moves = plan(self.table, self.nodes)
        for shard in shards:
            left = set(before[shard.shard_id][0]) - set(shard.copies)
            self.missed.update((shard.shard_id, n) for n in left)
        self.copies.placed(moves, before, self.is_up, self.writes)
        for shard_id in self.copies.newly_lost:
            # The new copies may start empty: what was acknowledged so far
            # may live only on the lost copies until they are merged back.
            self.excused[shard_id] |= self.acked[shard_id]
        return moves

    def roll_back(self) -> None:
        """A fill whose target died gives its place back to the retiring copy;
        should the failed copy return, its partial fill must not count."""
        for item in self.copies.before_placement(self.is_up):
            if isinstance(item, Announce) and item.source is not None:
                self.missed.add((item.shard_id, item.source))

    def event(self, wanted: str) -> None:
        """Redistributor.handle: a node event asks for a rule, maybe deferred."""
        if wanted == "rebalance" or self.pending != "rebalance":
            self.pending = wanted
        if not self.deferred:
            self.run_pending()

    def run_pending(self) -> None:
        wanted, self.pending = self.pending, None
        if wanted is not None:
            self.apply(rebalance if wanted == "rebalance" else reconcile)

    # -- what happens to a cluster (plain methods, so regressions can replay them) --

    def setup(self, num_shards: int, replication: int, first: Sequence[int | None]) -> None:
        self.copies = Copies(ShardTable(num_shards, replication))
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
        self._set(node, live=False)  # its data stays with it
        self.killed.add(node)
        self.event("reconcile")

    def do_recover(self, node: str) -> None:
        self._set(node, live=True, held=False)
        self.event("reconcile")

    def do_go_away(self, node: str) -> None:
        """A planned restart, or a failure within the replica delay: the node is
        down and its copies stay where they are."""
        self._set(node, live=False, held=True)
        self.killed.add(node)
        self.event("reconcile")

    def do_expire(self, node: str) -> None:
        """The node's delay passed while it was still away: the usual rebuild."""
        self._set(node, held=False)
        self.event("reconcile")

    def removable(self) -> list[str]:
        """DELETE /nodes/<id> is refused while the node holds or hands over a copy."""
        handing_over = {n for nodes in self.retiring.values() for n in nodes}
        return sorted(n for n in self.nodes if self.table.load(n) == 0 and n not in handing_over)

    def do_remove(self, node: str) -> None:
        assert node in self.removable()
        del self.nodes[node]
        del self.data[node]  # gone for good
        self.copies.node_removed(node)  # its data is declared gone...
        for shard_id in range(self.table.num_shards):
            gone = {w for w in self.excused[shard_id] if not self.on_lost(shard_id, w)}
            self.excused[shard_id] -= gone
            self.acked[shard_id] -= gone  # ...so the operator gave these writes up
        self.event("reconcile")

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
        """POST /shards/assign runs at once, deferred or not."""
        self.roll_back()  # dead fills roll back, whether the assignment is refused or not
        before = self.table.copy()
        try:
            self.apply(lambda table, nodes: assign_primary(table, shard_id, node, nodes))
        except PlacementError:
            assert self.table == before, "a refused assignment changed the table"
            return False
        assert self.table.shards[shard_id].primary == node
        return True

    def do_write(
        self, shard_id: int, failing: frozenset[str] = frozenset(), version: int | None = None
    ) -> int | None:
        """Router.write: the write id if acknowledged; None for a 503 or an error.
        ``version``: one reserved earlier (the write took it, then was delayed)."""
        shard = self.table.shards[shard_id]
        if version is not None:
            self.reserved.remove(version)
        sent, filling = self.copies.write_targets(shard_id, self.is_up)
        if not sent:
            return None  # 503: nothing acknowledged, nothing sent
        if version is None:
            self.writes += 1
            version = self.writes
        write = version
        for node in sent + filling:
            if node not in failing:
                self.store(node, shard_id).add(write)
        self.missed.update((shard_id, n) for n in filling if n in failing)
        asleep = [n for n in shard.copies if n not in shard.in_sync and not self.is_up(n)]
        self.missed.update((shard_id, n) for n in asleep)
        ok, behind = self.copies.write_done(
            shard_id, sent, filling, set(failing), self.is_up, lowest=write
        )
        if not ok:
            return None  # no authoritative copy took it: an error, not acknowledged
        self.copies.write_missed(shard_id, behind)
        self.copies.missed_saved(shard_id, behind)  # out of the set before the ack
        self.acked[shard_id].add(write)
        return write

    def do_lose_data(self, node: str) -> None:
        """An in-memory node restarted (or its data dir was wiped): it comes back
        empty under a new incarnation, and the coordinator hears of it."""
        self.data[node] = {}
        self._set(node, live=True)
        self.killed.add(node)  # what it served is gone, as if it had died
        instructions, gone = self.copies.data_lost(node)
        for item in instructions:
            if isinstance(item, Restart):
                self.missed.add((item.shard_id, item.node_id))
        for shard_id in gone:
            # Its only authoritative copies are gone for good: so are the writes that
            # no copy holds any more. Those a lost copy holds come back when it is
            # merged: until then they are excused, as after any loss.
            in_sync = self.table.shards[shard_id].in_sync
            self.acked[shard_id] = {
                w
                for w in self.acked[shard_id]
                if self.on_lost(shard_id, w)
                or (in_sync and all(w in self.held(n, shard_id) for n in in_sync))
            }
            self.excused[shard_id] |= {w for w in self.acked[shard_id] if self.on_lost(shard_id, w)}
        for shard_id in range(self.table.num_shards):
            # Writes it alone held as a lost copy are gone too.
            gone_writes = {w for w in self.excused[shard_id] if not self.on_lost(shard_id, w)}
            self.excused[shard_id] -= gone_writes
            self.acked[shard_id] -= gone_writes
        self.event("reconcile")

    def do_reserve(self) -> int:
        """A write takes its version and is held up before it is sent."""
        self.writes += 1
        self.reserved.append(self.writes)
        return self.writes

    def fill_wanted(self, shard_id: int, node: str) -> bool:
        """Mover._still_wanted."""
        return self.copies.wants_fill(shard_id, node) and self.is_up(node)

    def do_start_fill(self, shard_id: int, node: str) -> bool:
        """Mover._fill up to the export: forget missed writes, pick the donor."""
        if not self.fill_wanted(shard_id, node):
            return False
        self.missed.discard((shard_id, node))
        donors = self.copies.fill_donors(shard_id, node, self.is_up)
        if not donors:
            return False
        since = self.copies.catch_up_from(shard_id, node)
        delta = {w for w in self.held(donors[0], shard_id) if w > since}
        self.fills[(shard_id, node)] = (donors[0], frozenset(delta))
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
        return bool(self.copies.fill_done(shard_id, node, donor))

    def do_fill(self, shard_id: int, node: str) -> bool:
        return self.do_start_fill(shard_id, node) and self.do_finish_fill(shard_id, node)

    def do_release(self) -> bool:
        """Mover._release_finished_handovers: the machine says which copies go."""
        instructions = self.copies.handovers_done(self.is_up)
        for item in instructions:
            if isinstance(item, Drop):
                self.drop(item.node_id, item.shard_id)
        return bool(instructions)

    def do_merge(self, shard_id: int, node: str) -> bool:
        """Mover._merge: a returning lost copy goes into every copy of a settled shard."""
        assert node in self.lost[shard_id] and self.is_up(node)
        targets = self.copies.merge_targets(shard_id, node, self.is_up)
        if not targets:
            return False
        for target in targets:
            self.store(target, shard_id).update(self.held(node, shard_id))
        for item in self.copies.merge_done(shard_id, node, targets[0]):
            if isinstance(item, Drop):
                self.drop(item.node_id, item.shard_id)
        return True

    # -- the promises --

    def check(self) -> None:
        self.table.validate()  # in_sync within copies, no node twice
        for shard in self.table.shards:
            # Model bookkeeping, not a check: a write excused by a loss is back
            # once every authoritative copy holds it again (merged, or filled
            # from a copy that had it); from then on it is owed like any other.
            holders = shard.in_sync | self.retiring.get(shard.shard_id, set())
            if holders:
                self.excused[shard.shard_id] = {
                    w
                    for w in self.excused[shard.shard_id]
                    if not all(w in self.held(n, shard.shard_id) for n in holders)
                }
        for shard in self.table.shards:
            self.check_shard(shard.shard_id)
        self.served = {s.shard_id: set(self.auth(s.shard_id)) for s in self.table.shards}
        self.killed = set()

    def check_shard(self, sid: int) -> None:
        shard = self.table.shards[sid]
        retiring = self.retiring.get(sid, set())
        lost = self.lost.get(sid, set())
        holders = shard.in_sync | retiring
        served = self.auth(sid)
        # 1. Well formed: in_sync within copies and no node twice (validate),
        # copies[0] leads, a retiring copy is not also a copy, and DELETE kept
        # every retiring or lost node registered.
        assert shard.primary == (shard.copies[0] if shard.copies else None)
        assert not retiring & set(shard.copies), f"shard {sid}: retiring {retiring} in copies"
        assert retiring <= self.nodes.keys(), f"shard {sid}: retiring copy on a removed node"
        assert lost <= self.nodes.keys(), f"shard {sid}: lost copy on a removed node"
        # 2. Every authoritative copy (in sync or retiring, live or dead: a dead
        # one serves again as soon as it returns) holds every acknowledged write,
        # but those excused because every copy holding them was lost.
        owed = self.acked[sid] - self.excused[sid]
        for node in sorted(holders):
            missing = owed - self.held(node, sid)
            assert not missing, (
                f"shard {sid}: authoritative copy on {node} "
                f"({'in sync' if node in shard.in_sync else 'retiring'}, "
                f"{'live' if self.is_up(node) else 'dead'}) lacks acknowledged {sorted(missing)}"
            )
        # 3. A shard with an authoritative copy on a live node before the step
        # still has one after it, unless the step killed those nodes.
        if self.served.get(sid, set()) - self.killed:
            assert served, (
                f"shard {sid} lost its last live authoritative copy "
                f"({sorted(self.served[sid])}) though none of them died"
            )
        # 4. Reads. No acknowledged write ever reads as a 404: it is found, or
        # (lost copy, or nothing serving) the miss is a 503. With no lost copy
        # recorded the shard is complete: nothing is excused, every acknowledged
        # write is found, and when nothing serves the shard, placement is
        # deferred and the write waits on a registered authoritative copy of a
        # dead node; once placement has run, a shard with acknowledged writes
        # and no lost copy is served.
        for write in sorted(self.acked[sid]):
            assert self.read(sid, write) != "missing", f"shard {sid}: write {write} reads as 404"
        if not lost:
            assert not self.excused[sid], f"shard {sid}: complete, yet {self.excused[sid]} lacking"
            for write in sorted(self.acked[sid]):
                assert not served or self.read(sid, write) == "found"
                assert any(write in self.held(n, sid) for n in holders), (
                    f"shard {sid}: acknowledged write {write} is on no authoritative copy"
                )
            # A copy on a node that is away but expected back keeps its place:
            # the shard waits for it (or for its delay to pass) instead.
            waiting = any(self.nodes[n].held for n in holders)
            if self.acked[sid] and self.pending is None and not waiting:
                assert served, f"shard {sid} has acknowledged writes but nothing serves it"
        # 5. A lost copy is on a registered node (checked in 1) that is dead, or
        # live with its merge to run; every write it excuses is still on one.
        for write in sorted(self.excused[sid]):
            assert self.on_lost(sid, write), (
                f"shard {sid}: acknowledged write {write} was lost with no copy to return it"
            )

    # -- Hypothesis glue --

    def pick(self, data: st.DataObject, nodes: Sequence[str]) -> str:
        return data.draw(st.sampled_from(sorted(nodes)))

    def nodes_where(self, which: Callable[[NodeState], bool]) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if which(s))

    def fillable(self) -> list[tuple[int, str]]:
        return [
            (s.shard_id, n)
            for s in self.table.shards
            for n in s.copies
            if (s.shard_id, n) not in self.fills and self.fill_wanted(s.shard_id, n)
        ]

    def mergeable(self) -> list[tuple[int, str]]:
        return sorted((s, n) for s, nodes in self.lost.items() for n in nodes if self.is_up(n))

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

    @precondition(lambda self: self.nodes_where(lambda s: s.live))
    @rule(data=st.data())
    def go_away(self, data: st.DataObject) -> None:
        self.do_go_away(self.pick(data, self.nodes_where(lambda s: s.live)))

    @precondition(lambda self: self.nodes_where(lambda s: s.held and not s.live))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        self.do_expire(self.pick(data, self.nodes_where(lambda s: s.held and not s.live)))

    @precondition(lambda self: self.removable())
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        self.do_remove(self.pick(data, self.removable()))

    @precondition(lambda self: self.nodes)
    @rule(data=st.data(), leaving=st.booleans())
    def set_leaving(self, data: st.DataObject, leaving: bool) -> None:
        self.do_set_leaving(self.pick(data, list(self.nodes)), leaving)

    @precondition(lambda self: self.nodes)
    @rule(data=st.data(), capacity=capacities)
    def set_capacity(self, data: st.DataObject, capacity: int | None) -> None:
        self.do_set_capacity(self.pick(data, list(self.nodes)), capacity)

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
        self.do_assign(shard_id, self.pick(data, list(self.nodes)))

    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        shard_id = data.draw(st.integers(min_value=0, max_value=self.table.num_shards - 1))
        shard = self.table.shards[shard_id]
        reachable = sorted(set(self.auth(shard_id)) | {n for n in shard.copies if self.is_up(n)})
        failing: frozenset[str] = frozenset()
        if reachable:
            failing = data.draw(st.just(failing) | st.frozensets(st.sampled_from(reachable)))
        version = data.draw(st.sampled_from([None, *self.reserved]))
        self.do_write(shard_id, failing, version)

    @precondition(lambda self: len(self.reserved) < 3)
    @rule()
    def reserve(self) -> None:
        self.do_reserve()

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
    @rule()
    def release(self) -> None:
        self.do_release()

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def lose_data(self, data: st.DataObject) -> None:
        self.do_lose_data(self.pick(data, list(self.nodes)))

    @precondition(lambda self: self.mergeable())
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        self.do_merge(*data.draw(st.sampled_from(self.mergeable())))


TestCopies = CopiesMachine.TestCase
TestCopies.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- regressions, replayed step by step --


class Replay:
    """Drive a machine by hand: ``r.fail("n1")`` runs ``do_fail("n1")``, then
    (when ``checked``) every invariant, as Hypothesis would."""

    def __init__(
        self,
        num_shards: int,
        replication: int,
        nodes: int,
    ) -> None:
        self.m = CopiesMachine()
        self.checked = True
        self.m.setup(num_shards, replication, [None] * nodes)
        self.m.check()

    def __getattr__(self, name: str) -> Callable[..., object]:
        action = getattr(self.m, f"do_{name}")

        def step(*args: object) -> object:
            result = action(*args)
            if self.checked:
                self.m.check()
            return result

        return step


def test_retiring_copy_placed_back_stays_authoritative() -> None:
    """settle used to clear in_sync on every added copy, also on a retiring copy
    placed back on its node: the shard then had no authoritative copy at all,
    though its only in-sync copy was live (writes 503 for good, nothing to fill
    from)."""
    r = Replay(1, 1, 2)
    r.set_leaving("n1", True)  # n1 -> n2: n2 filling, n1 retiring
    r.set_leaving("n1", False)
    r.set_leaving("n2", True)  # n2 -> n1: back where the data is
    assert r.m.auth(0) == ["n1"]


def test_new_copy_waits_for_dead_authoritative_copy_still_placed() -> None:
    """settle used to treat "no live authoritative copy" as "all lost" even when
    a dead in-sync copy was still placed (placement deferred, assign_primary
    moving only the primary): the new copy started empty *and in sync*, nothing
    was recorded lost, and once reconcile dropped the dead copy the write was
    gone and read as a 404."""
    r = Replay(1, 2, 3)
    r.fill(0, "n2")
    write = r.write(0, frozenset({"n1"}))  # n1 misses it: only n2 is in sync
    assert isinstance(write, int)
    r.defer()
    r.fail("n2")
    assert r.assign(0, "n3")  # n1 -> n3 while n2 is dead but placed
    assert r.m.table.shards[0].in_sync == {"n2"}
    r.resume()  # n2 goes: recorded lost, its write excused
    assert r.m.read(0, write) == "unavailable"
    r.recover("n2")
    assert r.merge(0, "n2")
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write


def test_retiring_copy_that_was_down_misses_writes() -> None:
    """Found by this machine: Router.write acks without a dead authoritative copy but leaves it
    in_sync/retiring; back up, it serves without the write."""
    r = Replay(1, 2, 3)
    r.fill(0, "n2")
    r.set_leaving("n1", True)  # n1 -> n3: n3 filling, n1 retiring
    r.fail("n1")
    write = r.write(0, frozenset({"n3"}))  # acked by n2 alone; n3 must refill
    assert isinstance(write, int)
    r.recover("n1")  # retiring again, without the write
    r.fail("n2")  # settle: n1 is live and authoritative, so n2 is not lost
    r.fill(0, "n3")  # filled from n1
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write


def test_filling_copy_that_was_down_misses_writes() -> None:
    """Found by this machine: Router.write skips a filling copy that is down without noting the
    miss; a fill running across its outage completes without the write."""
    r = Replay(1, 2, 1)
    r.defer()
    r.join()
    r.rebalance()  # n2 joins the shard, to be filled
    assert r.start_fill(0, "n2")
    r.fail("n2")  # placement deferred: n2 stays placed
    write = r.write(0)
    assert isinstance(write, int)
    r.recover("n2")
    r.finish_fill(0, "n2")
    r.resume()
    r.fail("n1")
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write


def test_shard_whose_retiring_copy_dies_is_declared_lost() -> None:
    """Found by this machine: Redistributor.apply settles only shards with moves: a shard whose
    last authoritative copy dies while retiring is never declared lost, so it stays unwritable
    and its dead node cannot be removed."""
    r = Replay(1, 1, 2)
    assert isinstance(r.write(0), int)
    assert r.assign(0, "n2")  # n1 -> n2: n2 filling, n1 retiring
    r.fail("n1")  # like an R=1 shard losing its copy: it goes on, incomplete
    assert isinstance(r.write(0), int)
    assert "n1" in r.m.removable()


def test_release_waits_for_live_successor() -> None:
    """Found by this machine: handover_done ignores liveness: the mover drops the live retiring
    copy while the in-sync successor is dead but still placed."""
    r = Replay(1, 1, 2)
    write = r.write(0)
    assert isinstance(write, int)
    r.defer()
    assert r.assign(0, "n2")
    assert r.fill(0, "n2")
    r.fail("n2")
    r.release()  # must not drop n1: its successor is dead
    assert r.m.auth(0) == ["n1"]  # n1 is live and has the data: it serves on
    assert write in r.m.held("n1", 0)


def test_fill_of_copy_that_left_meanwhile_restarts() -> None:
    """Found by this machine: Mover._fill does not notice its copy left the shard and came back
    mid-fill: writes in between never reached it."""
    r = Replay(1, 2, 2)
    assert r.start_fill(0, "n2")
    r.set_leaving("n2", True)  # maintenance on: n2's copy goes
    write = r.write(0)
    assert isinstance(write, int)
    r.set_leaving("n2", False)  # and off: the short shard takes n2 back
    r.finish_fill(0, "n2")
    r.fail("n1")
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write


def test_merge_reaches_retiring_copies() -> None:
    """Found by this machine: Mover._merge merges into in-sync copies only, then clears lost: a
    retiring copy lacks the merged writes, and a fill from it loses them."""
    r = Replay(1, 2, 2)
    r.fill(0, "n2")
    write = r.write(0)
    assert isinstance(write, int)
    r.defer()
    r.fail("n1")
    r.fail("n2")
    r.set_capacity("n1", 0)  # when back, n1 takes no copy
    r.join()
    r.join()
    r.resume()  # n3, n4 start empty; n1, n2 lost
    r.remove("n2")  # declared gone: the write lives on n1 alone
    r.recover("n1")
    r.join()
    r.set_leaving("n3", True)  # n3 -> n5: n3 retiring, without the write
    r.merge(0, "n1")  # as written: into n4 only, and n1's copy is dropped
    r.fail("n4")
    r.fill(0, "n5")  # from n3
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write


def test_move_whose_target_fails_mid_fill_is_undone() -> None:
    """Found by the scenario of a move whose target dies mid-fill: the move was re-homed
    on whichever node placement picked, not undone, and the shard started a second
    fill while its old copy could simply serve on."""
    r = Replay(1, 1, 3)
    write = r.write(0)
    assert isinstance(write, int)
    assert r.assign(0, "n3")
    assert r.fill(0, "n3")
    assert r.release()  # the shard now lives on n3
    assert r.assign(0, "n2")  # n3 -> n2: n2 filling, n3 retiring
    assert r.start_fill(0, "n2")
    r.fail("n2")  # the target dies part-way
    assert r.m.table.shards[0].copies == ["n3"]
    assert r.m.table.shards[0].in_sync == {"n3"} and not r.m.retiring
    assert r.m.read(0, write) == "found"


def test_delta_catch_up_includes_a_write_older_than_the_one_that_dropped_the_copy() -> None:
    """A write took its version, was held up, and landed after a newer write had
    taken the away copy out of the in-sync set: the copy's delta must start below
    the older one, or it rejoins without it."""
    r = Replay(1, 2, 2)
    r.fill(0, "n2")
    r.reserve()  # version 1, not sent yet
    r.go_away("n2")
    assert r.write(0) == 2  # drops n2 (its point: 1)
    late = r.write(0, frozenset(), 1)  # the held-up write lands now, on n1 only
    assert late == 1
    r.recover("n2")
    assert r.fill(0, "n2")
    assert 1 in r.m.held("n2", 0), "the delta skipped a write older than its point"


def test_a_dead_copy_replaced_while_another_served_is_kept_for_a_later_loss() -> None:
    """Found by the simulator (seed 91): n1 and n2 hold a write; n2 is cut off and its
    copy replaced while n1 serves; then n1 comes back without its data. The write
    survives only on n2: it must be merged back when n2 returns, never forgotten."""
    r = Replay(1, 2, 3)
    assert r.fill(0, "n2")
    write = r.write(0)
    assert isinstance(write, int)
    r.fail("n2")  # n3 takes n2's place (filling); n1 alone in sync
    assert "n2" not in r.m.table.shards[0].copies
    r.lose_data("n1")
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write
    r.recover("n2")
    assert "n2" in r.m.lost.get(0, set())
    for target, _ in [(n, 0) for n in r.m.table.shards[0].copies]:
        if target not in r.m.table.shards[0].in_sync:
            assert r.fill(0, target)  # the merge waits for a settled shard
    assert r.merge(0, "n2")
    assert r.m.read(0, write) == "found"


def test_a_dead_copy_dropped_with_no_replacement_is_kept_for_a_later_loss() -> None:
    """Found by the simulator (seed 91 with single calls run inline): n1 and n2 hold
    a write; n2 fails and no node can take its place, so the shard keeps n1 alone,
    whose copies are all in sync: the departed n2 was forgotten at once. Then n1
    lost its data and the shard counted as complete: the write read as a 404."""
    r = Replay(1, 2, 2)
    assert r.fill(0, "n2")
    write = r.write(0)
    assert isinstance(write, int)
    r.fail("n2")  # nowhere to put a second copy: n1 alone, in sync
    assert r.m.table.shards[0].copies == ["n1"]
    r.lose_data("n1")
    assert r.m.read(0, write) != "missing"  # never a 404 for an acknowledged write
    r.recover("n2")
    assert "n2" in r.m.lost.get(0, set())
    for target in list(r.m.table.shards[0].copies):
        if target not in r.m.table.shards[0].in_sync:
            assert r.fill(0, target)  # the merge waits for a settled shard
    assert r.merge(0, "n2")
    assert r.m.read(0, write) == "found"


def test_a_write_taken_only_by_a_copy_replaced_meanwhile_is_not_acknowledged() -> None:
    """Found by the simulator (seed 213): a write went to a and b; a (slow, judged
    down) was replaced while it ran; a took it late and b refused it. Counting a's
    answer acknowledged a write that no copy of the shard held any more."""
    copies = Copies(ShardTable(1, 2))
    shard = copies.table.shards[0]
    shard.copies, shard.in_sync = ["a", "b"], {"a", "b"}
    sent, _filling = copies.write_targets(0, lambda n: True)
    assert sorted(sent) == ["a", "b"]
    before = {0: (list(shard.copies), set(shard.in_sync))}
    shard.copies = ["b", "c"]  # placement, while the write runs: a is down
    shard.in_sync.discard("a")  # as ShardTable.apply does for a moved copy
    copies.placed([], before, lambda n: n != "a", 1)
    ok, _behind = copies.write_done(0, sent, [], {"b"}, lambda n: n != "a", lowest=1)
    assert not ok
