"""The copy lifecycle against scripted nodes: what a write, a read, a fill or a
merge may count on while copies fail, answer late or hold newer versions.

Each test pins one way an acknowledged write used to be lost or a read to go
back in time; the nodes are fakes (tests/fake_nodes.py) so the interleaving is
exact rather than hoped for.
"""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from torua.coordinator.control.mover import Mover
from torua.coordinator.state.persistence import restore, snapshot
from torua.coordinator.state.state import ClusterState
from torua.errors import ApiError

from .fake_nodes import router_rig


async def test_no_write_is_acknowledged_while_a_dropped_copy_is_still_saved_as_in_sync() -> None:
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"v0")
        rig.backend.open = trio.Event()  # state saves stall from here
        rig.nodes["b"].fail = "500"
        acked: list[bytes] = []

        async def write(value: bytes) -> None:
            await rig.router.write("k", value)
            acked.append(value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, b"v1")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(write, b"v2")
            await trio.testing.wait_all_tasks_blocked()
            # The saved state still counts b in sync, and b has neither write.
            assert acked == []
            rig.backend.open.set()
        assert sorted(acked) == [b"v1", b"v2"]
        assert rig.backend.saved_in_sync(0) == {"a"}


async def test_a_read_is_not_answered_by_a_copy_that_left_the_in_sync_set_meanwhile() -> None:
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"old")
        rig.nodes["a"].get_gate = trio.Event()
        outcome: list[object] = []

        async def read() -> None:
            try:
                outcome.append(await rig.router.get("k"))
            except ApiError as exc:
                outcome.append(exc.status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)  # waits on the primary, a
            await trio.testing.wait_all_tasks_blocked()
            rig.nodes["b"].fail = "500"
            await rig.router.write("k", b"new")  # acknowledged; b missed it and left
            assert "b" not in rig.state.table.shards[0].in_sync
            rig.nodes["b"].fail = None  # b answers again, without the new write
            rig.nodes["a"].fail = "unreachable"
            rig.nodes["a"].get_gate.set()
        assert outcome != [b"old"], "answered from a copy that misses an acknowledged write"


async def test_a_copy_that_joined_the_in_sync_set_during_a_write_it_then_failed_leaves() -> None:
    async with router_rig(["a", "c"]) as rig:
        shard = rig.state.table.shards[0]
        shard.in_sync = {"a"}  # c is being filled
        rig.nodes["c"].gate = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.router.write, "k", b"v")
            await trio.testing.wait_all_tasks_blocked()
            shard.in_sync.add("c")  # its fill ended while the write was in flight
            rig.nodes["c"].fail = "500"
            rig.nodes["c"].gate.set()
        assert "c" not in shard.in_sync
        assert "c" not in rig.backend.saved_in_sync(0)


async def test_a_copy_holding_a_newer_version_never_acknowledges_an_older_write() -> None:
    async with router_rig(["a", "b"]) as rig:
        future = 2**62  # as left by a coordinator whose clock ran ahead
        for node in rig.nodes.values():
            node.records[(0, "k")] = (b"from-the-future", future)
        await rig.router.write("k", b"now")
        assert await rig.router.get("k") == b"now"
        for node in rig.nodes.values():
            assert node.records[(0, "k")][0] == b"now"
        await rig.router.write("k", None)
        with pytest.raises(ApiError) as err:
            await rig.router.get("k")
        assert err.value.status == 404


async def test_versions_grow_across_a_restart_whatever_the_wall_clock_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [2_000_000_000 * 10**9]
    monkeypatch.setattr("time.time_ns", lambda: clock[0])
    async with router_rig(["a"]) as rig:
        issued = [await rig.router.versions.next() for _ in range(50)]
        saved = rig.backend.saved[-1]
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    clock[0] -= 120 * 10**9  # the restarted coordinator's clock is two minutes behind
    async with router_rig(["a"]) as rig:
        restore(rig.state, saved)
        assert await rig.router.versions.next() > max(issued)


async def test_a_fresh_state_file_round_trips_the_reserved_ceiling() -> None:
    async with router_rig(["a"]) as rig:
        first = await rig.router.versions.next()
        data = json.loads(json.dumps(snapshot(rig.state)))
    state = ClusterState(rig.state.settings)
    restore(state, data)
    assert state.version_hwm >= first and state.version_saved >= first


async def test_a_hit_older_than_what_a_lost_copy_may_hold_is_not_served() -> None:
    async with router_rig(["c"]) as rig:
        await rig.router.write("k", b"v1")
        rig.state.version_hwm += 1  # a newer k went to b only, then b was lost
        rig.state.lost[0] = {"b"}
        rig.state.lost_floor[0] = rig.state.version_hwm
        with pytest.raises(ApiError) as err:
            await rig.router.get("k")
        assert (err.value.status, err.value.code) == (503, "incomplete_shard")
        await rig.router.write("k", b"v3")  # written since: current
        assert await rig.router.get("k") == b"v3"


async def test_a_node_that_lost_its_data_leaves_the_in_sync_sets_before_it_is_assigned() -> None:
    from torua.coordinator.control.incarnations import Incarnations

    async with router_rig(["a", "b"]) as rig:
        rig.state.registry.get("b").incarnation = "i1"
        incarnations = Incarnations(rig.state, rig.actions, rig.router.versions)
        rig.sync.on_incarnation = incarnations.observe
        rig.nodes["b"].incarnation = "i2"  # restarted empty while nobody watched
        results = await rig.sync.push("b")
        assert results == {"b": None}
        assert rig.state.table.shards[0].in_sync == {"a"}
        assert rig.backend.saved_in_sync(0) == {"a"}
        assert rig.state.registry.get("b").incarnation == "i2"


async def test_a_merge_reaches_copies_placed_while_it_ran() -> None:
    async with router_rig(["b", "a"]) as rig:
        shard = rig.state.table.shards[0]
        shard.copies, shard.in_sync = ["b"], {"b"}
        rig.state.lost[0] = {"a"}
        rig.nodes["a"].records[(0, "k")] = (b"from-a", 5)
        rig.state.registry.register("c", "http://c", None)
        rig.state.health_status["c"] = "healthy"
        from .fake_nodes import FakeNode

        rig.nodes["c"] = FakeNode()
        rig.nodes["b"].import_gate = trio.Event()
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mover._merge, 0, "a")
            await trio.testing.wait_all_tasks_blocked()
            shard.copies.append("c")  # placed (and filled) while the merge ran
            shard.in_sync.add("c")
            rig.nodes["b"].import_gate.set()
        assert rig.nodes["c"].records.get((0, "k")) == (b"from-a", 5)


async def test_reads_settle_on_one_answer_after_a_write_that_failed_part_way() -> None:
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"v1")
        rig.nodes["a"].fail = "apply-then-unreachable"  # took it, then timed out
        rig.nodes["b"].fail = "500"
        with pytest.raises(ApiError):
            await rig.router.write("k", b"v2")
        rig.nodes["a"].fail = rig.nodes["b"].fail = None
        first = await rig.router.get("k")
        rig.nodes["a"].fail = "unreachable"  # the next read can only reach b
        assert await rig.router.get("k") == first


async def test_membership_and_config_events_never_go_through_the_lossy_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torua.events import EventBus

    from .conftest import local_cluster

    def full_bus(self: EventBus, event: object) -> None:
        raise AssertionError(f"{type(event).__name__} could be dropped by a full bus")

    async with local_cluster(1, replicas=1) as cluster:
        monkeypatch.setattr(EventBus, "publish_nowait", full_bus)
        response = await cluster.http.put("/cluster/config", json={"max_moves": 3})
        assert response.status_code == 200, response.text
        response = await cluster.http.post(
            "/register", json={"node": {"id": "n9", "addr": "http://127.0.0.1:9"}}
        )
        assert response.status_code == 204, response.text
        assert (await cluster.http.delete("/nodes/n9")).status_code == 204
        monkeypatch.undo()


async def test_a_write_no_copy_could_take_saves_nothing_and_settles_nothing() -> None:
    async with router_rig(["a"]) as rig:
        await rig.router.write("k", b"v1")
        saves = len(rig.backend.saved)
        rig.state.health_status["a"] = "unhealthy"
        for _ in range(20):  # an outage: every write fails before reaching any node
            with pytest.raises(ApiError) as err:
                await rig.router.write("k", b"v2")
            assert err.value.status == 503
        assert not rig.state.copies.is_unsettled(0, "k")
        assert len(rig.backend.saved) == saves, "each refused write saved the state"


async def test_a_copy_since_a_version_transfers_only_the_newer_records() -> None:
    async with router_rig(["a", "b"]) as rig:
        source, target = rig.nodes["a"], rig.nodes["b"]
        for i in range(2500):  # three export pages
            source.records[(0, f"k{i:04}")] = (b"old", 10)
        source.records[(0, "k0001")] = (None, 20)  # a delete after the cut travels too
        source.records[(0, "k2499")] = (b"new", 21)
        source.records[(1, "k0002")] = (b"other shard", 30)
        target.records[(0, "k2499")] = (b"old", 10)
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        copied = await mover._copy_pages(0, "a", "b", lambda: None, since=10)
        assert copied == 2
        assert sorted(target.imported) == [("k0001", 20), ("k2499", 21)]
        assert target.records == {(0, "k0001"): (None, 20), (0, "k2499"): (b"new", 21)}
        assert [since for _, since in source.exports] == [10, 10, 10]
        assert await mover._copy_pages(0, "a", "b", lambda: None, since=21) == 0
        everything = await mover._copy_pages(0, "a", "b", lambda: None)
        assert everything == 2500 and len(target.records) == 2500


async def test_reads_during_a_write_in_flight_never_go_back_after_seeing_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found by the simulator (seed 182): a read served the value of a write still
    in flight from the copy that had applied it; that copy then failed, and the
    next read, from the copy the write had not reached yet, went back in time."""
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"old")
        rig.nodes["b"].write_gate = trio.Event()  # b takes reads, not the next write
        seen: list[object] = []

        async def read() -> None:
            with trio.move_on_after(5) as scope:  # a node call's deadline, in effect
                try:
                    seen.append(await rig.router.get("k"))
                except ApiError as exc:
                    seen.append(exc.status)
            if scope.cancelled_caught:
                seen.append("timeout")

        async def write() -> None:
            try:
                await rig.router.write("k", b"new")
            except ApiError:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()  # a applied it; b has not
            await read()
            rig.nodes["a"].fail = "unreachable"
            await read()
            rig.nodes["b"].write_gate.set()
        if b"new" in seen:
            assert b"old" not in seen[seen.index(b"new") :], seen


async def test_a_write_overtaken_by_a_newer_one_of_ours_is_not_resent_above_it() -> None:
    """Found by the simulator (seed 264, and 184 before it): a copy answered "not
    applied, I hold a newer version" because a concurrent newer write had reached
    it first. The router took that for its counter being behind and resent the
    older write with a larger version, so it took effect again after the newer
    one had been acknowledged and read. A version this cluster issued means the
    write was overtaken: it is acknowledged as applied and then overwritten."""
    from functools import partial

    async with router_rig(["a", "b"]) as rig:
        router = rig.router
        await router.write("k", b"first")
        older = await router.versions.next()
        newer = await router.versions.next()
        rig.nodes["b"].records[(0, "k")] = (b"newer", newer)  # it reached b first
        await router.replicate(
            0,
            partial(router._send_write, 0, "k", b"older", older),
            expect=204,
            judge=router._applied(older),
            lowest=older,
        )
        assert rig.nodes["b"].records[(0, "k")] == (b"newer", newer)
        assert rig.nodes["a"].records[(0, "k")] == (b"older", older)


async def test_a_read_that_outlives_a_handover_asks_the_successor() -> None:
    """A read sent to a move's retiring copy, answered after the handover ended,
    is not served from it (it may miss a write acknowledged since): the copy that
    took over is asked instead of answering 503."""
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"v")
        shard = rig.state.table.shards[0]
        shard.copies, shard.in_sync = ["b"], set()  # a -> b: b filled, a retiring
        rig.state.copies.retiring[0] = {"a"}
        rig.nodes["a"].get_gate = trio.Event()
        outcome: list[object] = []

        async def read() -> None:
            try:
                outcome.append(await rig.router.get("k"))
            except ApiError as exc:
                outcome.append(exc.status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)  # waits on a
            await trio.testing.wait_all_tasks_blocked()
            shard.in_sync.add("b")  # the handover ends: a is released
            del rig.state.copies.retiring[0]
            rig.nodes["a"].get_gate.set()
        assert outcome == [b"v"]
