"""Leader election and the leader lease, on Trio's virtual clock with a fake etcd.

Hours of renewals, partitions and expiries run in milliseconds; the property
that matters throughout is that two coordinators never act as leader at the
same moment, and that a leader's work stops before its lease can lapse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import trio

from tests.fake_etcd import FakeEtcd
from torua.config import CoordinatorSettings
from torua.coordinator.state.persistence import Persister
from torua.coordinator.state.state import ClusterState
from torua.ha.election import Election, margin_for
from torua.ha.term import Term

KEY = "/torua/leader"
TTL = 10.0


@dataclass
class Record:
    """Who led when: (name, epoch, started, ended)."""

    terms: list[tuple[str, int, float, float]] = field(default_factory=list)
    leading: dict[str, tuple[int, float]] = field(default_factory=dict)

    def lead_for(self, name: str, *, hold: float | None = None):  # type: ignore[no-untyped-def]
        async def lead(term: Term) -> None:
            start = trio.current_time()
            # Nobody else may be acting as leader when a term begins.
            assert not self.leading, f"{name} elected while {self.leading} leads"
            self.leading[name] = (term.epoch, start)
            try:
                if hold is None:
                    await trio.sleep_forever()
                await trio.sleep(hold)
            finally:
                del self.leading[name]
                self.terms.append((name, term.epoch, start, trio.current_time()))

        return lead

    def check_no_overlap(self) -> None:
        ordered = sorted(self.terms, key=lambda t: t[2])
        for before, after in zip(ordered, ordered[1:], strict=False):
            assert before[3] <= after[2], f"{before} overlaps {after}"
            assert after[1] > before[1], "epochs must grow from term to term"


async def until_leading(election: Election, leading: bool = True) -> None:
    """Until ``election`` leads (or, with False, no longer leads)."""
    while election.is_leader != leading:
        await election.changed.wait()


def election(etcd: FakeEtcd, name: str, ttl: float = TTL) -> Election:
    return Election(etcd.client(name), key=KEY, url=f"http://{name}", ttl=ttl)


async def test_one_leader_keeps_leading_for_hours(autojump_clock: trio.abc.Clock) -> None:
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        elections = [election(etcd, n) for n in ("a", "b", "c")]
        for e in elections:
            await nursery.start(e.run, record.lead_for(e.url))
        await trio.sleep(3 * 3600)
        leaders = [e for e in elections if e.is_leader]
        assert len(leaders) == 1
        assert all(e.leader == leaders[0].url for e in elections)
        assert len({e.epoch for e in elections}) == 1
        nursery.cancel_scope.cancel()
    assert len(record.terms) == 1  # renewals never let the lease lapse


async def test_partitions_never_give_two_leaders(autojump_clock: trio.abc.Clock) -> None:
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        elections = {n: election(etcd, n) for n in ("a", "b", "c")}
        for e in elections.values():
            await nursery.start(e.run, record.lead_for(e.url))
        for round_ in range(12):
            await trio.sleep(60)
            leader = next(n for n, e in elections.items() if e.is_leader)
            # Cut the leader off from etcd for longer than its lease, then heal.
            etcd.cut_off.add(leader)
            await trio.sleep(TTL * (1.5 + round_ % 3))
            assert not elections[leader].is_leader
            etcd.cut_off.discard(leader)
        nursery.cancel_scope.cancel()
    record.check_no_overlap()
    assert len(record.terms) >= 12


async def test_leader_work_stops_before_its_lease_can_lapse(
    autojump_clock: trio.abc.Clock,
) -> None:
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        a = election(etcd, "a")
        await nursery.start(a.run, record.lead_for("a"))
        await trio.sleep(100)
        holder = etcd.holder(KEY)
        assert holder is not None
        etcd.cut_off.add("a")
        lease_expires = etcd.leases[holder.lease][1]
        await until_leading(a, False)
        stopped = trio.current_time()
        nursery.cancel_scope.cancel()
    assert record.terms[0][3] <= stopped
    # Stopped in time, with the margin kept in hand, and not long before it was needed.
    assert stopped <= lease_expires - margin_for(TTL) + 0.01
    assert stopped >= lease_expires - TTL / 3 - margin_for(TTL) - 0.01


async def test_a_leader_that_stops_hands_over_at_once(autojump_clock: trio.abc.Clock) -> None:
    etcd, record = FakeEtcd(), Record()
    b = election(etcd, "b")
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as a_process:
            await a_process.start(election(etcd, "a").run, record.lead_for("a"))
            await nursery.start(b.run, record.lead_for("b"))
            await trio.sleep(30)
            a_process.cancel_scope.cancel()  # the coordinator stops: its nursery is cancelled
        stopped = trio.current_time()
        await until_leading(b)
        handover = trio.current_time()
        nursery.cancel_scope.cancel()
    # The lease is revoked on the way out: no waiting for the TTL.
    assert handover - stopped < 0.1
    record.check_no_overlap()


async def test_etcd_down_for_everyone_then_back(autojump_clock: trio.abc.Clock) -> None:
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        elections = [election(etcd, n) for n in ("a", "b")]
        for e in elections:
            await nursery.start(e.run, record.lead_for(e.url))
        await trio.sleep(5)
        etcd.cut_off.update({"a", "b"})
        await trio.sleep(3 * TTL)
        assert not any(e.is_leader for e in elections)  # nobody may lead blind
        etcd.cut_off.clear()
        # A fresh election within one TTL of etcd's return (the old lease runs out).
        await trio.sleep(TTL + 1)
        assert sum(e.is_leader for e in elections) == 1
        nursery.cancel_scope.cancel()
    record.check_no_overlap()


async def test_a_key_under_our_url_is_waited_out_not_taken(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Identity is the instance, not the URL: two hosts binding 0.0.0.0 share one."""
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as first_life:
            await first_life.start(election(etcd, "a").run, record.lead_for("a"))
            await trio.sleep(1)
            etcd.cut_off.add("a")  # killed: not even its lease is given back
            first_life.cancel_scope.cancel()
        holder = etcd.holder(KEY)
        assert holder is not None
        expires = etcd.leases[holder.lease][1]
        # The same address comes back as a new process, before the old lease runs out.
        second = Election(etcd.client("a2"), key=KEY, url="http://a", ttl=TTL)
        await nursery.start(second.run, record.lead_for("a2"))
        await until_leading(second)
        assert expires <= trio.current_time() <= expires + 1
        nursery.cancel_scope.cancel()
    record.check_no_overlap()


async def test_our_own_key_left_by_a_lapsed_term_is_released(
    autojump_clock: trio.abc.Clock,
) -> None:
    etcd, record = FakeEtcd(), Record()
    async with trio.open_nursery() as nursery:
        a = election(etcd, "a")
        await nursery.start(a.run, record.lead_for("a"))
        await trio.sleep(1)
        # Renewals fail for longer than the term lasts, but etcd keeps the lease
        # alive (as after an etcd restart, which refreshes lease TTLs).
        etcd.cut_off.add("a")
        await until_leading(a, False)
        holder = etcd.holder(KEY)
        assert holder is not None
        etcd.leases[holder.lease] = (TTL, trio.current_time() + 10 * TTL)
        etcd.cut_off.clear()
        await until_leading(a)
        # Released at once, not after the refreshed lease's 10 TTLs.
        assert (
            trio.current_time() < etcd.leases[holder.lease][1]
            if holder.lease in etcd.leases
            else True
        )
        nursery.cancel_scope.cancel()
    assert len(record.terms) == 2
    record.check_no_overlap()


async def test_term_guard_follows_renewals_and_ends(autojump_clock: trio.abc.Clock) -> None:
    term = Term(epoch=7, deadline=trio.current_time() + 5)
    with term.guard() as scope:
        await trio.sleep(4)
        term.extend(trio.current_time() + 5)
        await trio.sleep(4.5)  # past the first deadline: the extension holds
        assert term.valid()
        term.end()
        await trio.sleep(1)
    assert scope.cancelled_caught
    assert not term.valid()
    with term.guard() as late:
        await trio.sleep(1)  # a guard taken after the end is cancelled at once
    assert late.cancelled_caught


async def test_state_writes_of_a_deposed_leader_are_refused(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The state save is an etcd transaction guarded by the leader key's revision."""
    etcd = FakeEtcd()
    old = etcd.client("old")
    lease, _ = await old.grant(TTL)
    _, kv = await old.create(KEY, b"{}", lease)
    assert kv is not None
    old_epoch = kv.create_revision

    class Backend:
        async def save(self, payload: bytes) -> bool:
            return await old.put_if_owner(
                "/torua/state", payload, owner_key=KEY, owner_revision=old_epoch
            )

    lost = trio.Event()
    state = ClusterState(CoordinatorSettings(memory=True))
    persister = Persister(state, Backend(), on_lost=lost.set)
    async with trio.open_nursery() as nursery:
        await nursery.start(persister.run)
        await persister.flush()
        saved = etcd.holder("/torua/state")
        assert saved is not None and json.loads(saved.value)["cluster_id"] == state.cluster_id
        # The old leader's lease lapses and a new leader takes the key.
        await trio.sleep(TTL + 1)
        new = etcd.client("new")
        lease2, _ = await new.grant(TTL)
        won, _ = await new.create(KEY, b"{}", lease2)
        assert won
        state.version_hwm += 1
        persister.mark()
        with trio.fail_after(5):
            await lost.wait()
        nursery.cancel_scope.cancel()
    saved_after = etcd.holder("/torua/state")
    assert saved_after is not None and saved_after.mod_revision == saved.mod_revision
