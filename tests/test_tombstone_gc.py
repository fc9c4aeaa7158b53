"""Tombstone GC: stores purge what they are told, the coordinator tells them only
when every copy is in sync, and a copy away longer than the grace is rebuilt
from scratch (on Trio's virtual clock where time matters)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from torua.cluster.placement import reconcile
from torua.cluster.tombstone_gc import InSyncTimes, purgeable
from torua.config import CoordinatorSettings
from torua.coordinator.control.mover import MoveAborted, Mover
from torua.coordinator.control.tombstone_collector import TombstoneCollector
from torua.coordinator.nodes.client import Reply
from torua.coordinator.state.state import ClusterState
from torua.errors import ConfigError
from torua.node.api import create_node_app
from torua.node.sqlite_store import SqliteStore, open_sqlite_store
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore, Record

from .fake_nodes import router_rig

GRACE = 3600.0


async def test_memory_store_purges_only_tombstones_older_than_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore(clock=trio.current_time)
    await store.put(0, "gone", b"v", 1)
    await store.put(0, "gone", None, 2)
    await store.put(0, "kept", b"v", 3)
    await trio.sleep(100)
    await store.put(0, "young", None, 4)
    await store.put(0, "back", None, 5)
    await store.put(0, "back", b"again", 6)  # a value after a delete is no tombstone
    assert await store.purge_tombstones(0, older_than=150) == 0
    await trio.sleep(60)
    assert await store.purge_tombstones(0, older_than=150) == 1
    assert [k for k, _ in (await store.export(0))] == ["back", "kept", "young"]  # key order
    await trio.sleep(100)
    assert await store.purge_tombstones(0, older_than=150) == 1
    assert await store.get(0, "young") is None
    assert (await store.keys(0)) == ["back", "kept"]


async def test_sqlite_store_purges_tombstones_and_keeps_the_rest(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as store:
        await store.put_many(0, [("a", Record(None, 1)), ("b", Record(b"x", 2))])
        await store.put(1, "c", None, 3)
        assert await store.purge_tombstones(0, older_than=GRACE) == 0
        assert await store.purge_tombstones(0, older_than=0) == 1
        assert [k for k, _ in (await store.export(0))] == ["b"]
        assert [k for k, _ in (await store.export(1))] == ["c"]  # another shard is not touched
        assert store.stats(0).keys == 1


async def test_a_schema_1_store_upgrades_and_its_tombstones_start_their_grace_now(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "store.sqlite3")
    conn.executescript(
        "CREATE TABLE kv (shard INTEGER NOT NULL, key TEXT NOT NULL, value BLOB, "
        "version INTEGER NOT NULL, PRIMARY KEY (shard, key));"
        "INSERT INTO kv VALUES (0, 'old', NULL, 7), (0, 'live', x'01', 8);"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    store = SqliteStore(tmp_path)
    try:
        assert await store.purge_tombstones(0, older_than=GRACE) == 0
        assert await store.purge_tombstones(0, older_than=0) == 1
        assert [k for k, _ in (await store.export(0))] == ["live"]
    finally:
        await store.close()


def healthy_state(nodes: tuple[str, ...] = ("n1", "n2", "n3")) -> ClusterState:
    state = ClusterState(CoordinatorSettings(shards=4, replication_factor=2, tombstone_grace=GRACE))
    for node in nodes:
        state.registry.register(node, f"http://{node}", None)
        state.health_status[node] = "healthy"
    reconcile(state.table, state.node_states())
    for shard in state.table.shards:
        shard.in_sync.update(shard.copies)
    return state


def test_only_a_shard_whose_copies_are_all_in_sync_and_up_is_purgeable() -> None:
    state = healthy_state()
    up = state.is_up
    assert all(purgeable(state.copies, s, up) for s in range(4))
    shard = state.table.shards[0]
    shard.in_sync.discard(shard.copies[1])
    assert not purgeable(state.copies, 0, up)
    state.copies.lost[1] = {"n9"}
    assert not purgeable(state.copies, 1, up)
    state.copies.unsettled[2] = {"k"}
    assert not purgeable(state.copies, 2, up)
    state.health_status[state.table.shards[3].copies[0]] = "unhealthy"
    assert not purgeable(state.copies, 3, up)


class AppNodes:
    """The coordinator's node client, answered by real node apps in this process."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.clients = {f"http://{n}": app.test_client() for n, app in apps.items()}
        self.calls: list[tuple[str, str]] = []

    async def purge_tombstones(self, addr: str, shards: list[int], older_than: float) -> Reply:
        self.calls.append((addr, "/tombstones/purge"))
        body = {"shards": shards, "older_than": older_than}
        response = await self.clients[addr].post("/tombstones/purge", json=body)
        return Reply(response.status_code, await response.get_data(), {})


async def test_tombstones_are_purged_after_the_grace_and_an_away_copy_needs_a_full_fill(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state = healthy_state()
    stores = {n: MemoryStore(clock=trio.current_time) for n in ("n1", "n2", "n3")}
    apps = {}
    for node, store in stores.items():
        runtime = NodeRuntime(node_id=node)
        runtime.held = set(state.copies.held_by(node))
        apps[node] = create_node_app(runtime, store, max_value=1024)
    shard = state.table.shards[0]
    holder, other = shard.copies
    for node in shard.copies:
        await stores[node].put(0, "doomed", b"v", 1)
        await stores[node].put(0, "doomed", None, 2)
        await stores[node].put(0, "kept", b"v", 3)
    nodes = AppNodes(apps)
    collector = TombstoneCollector(state, nodes, clock=trio.current_time)  # type: ignore[arg-type]
    assert collector.round_length() == 60.0
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        await trio.sleep(GRACE - 1)
        assert all(
            [("doomed", Record(None, 2)) in (await stores[n].export(0)) for n in shard.copies]
        )
        # The other copy misses a write now and leaves the in-sync set.
        shard.in_sync.discard(other)
        times = state.in_sync_times
        assert not times.needs_full_fill(state.copies, 0, other, trio.current_time(), GRACE)
        await trio.sleep(2 * 60)
        # Out of sync: shard 0 is purged nowhere, however old its tombstones.
        assert ("doomed", Record(None, 2)) in (await stores[holder].export(0))
        shard.in_sync.add(other)  # in sync again: the next round (within a minute) purges
        await trio.sleep(60)
        for n in shard.copies:
            assert ("doomed", Record(None, 2)) not in (await stores[n].export(0))
        assert [k for k, _ in (await stores[other].export(0))] == ["kept"]
        # A copy out of sync for longer than the grace is rebuilt, never merged.
        shard.in_sync.discard(other)
        left = trio.current_time()
        await trio.sleep(GRACE - 61)
        assert not times.needs_full_fill(state.copies, 0, other, trio.current_time(), GRACE)
        await trio.sleep(62)
        assert times.needs_full_fill(state.copies, 0, other, trio.current_time(), GRACE)
        assert trio.current_time() - left <= GRACE + 1
        await trio.testing.wait_all_tasks_blocked()  # no purge in flight through the test client
        nursery.cancel_scope.cancel()
    assert collector.purged == 2
    # One request per node per round, never per shard.
    rounds = {addr: sum(1 for a, _ in nodes.calls if a == addr) for addr in nodes.clients}
    assert max(rounds.values()) <= (trio.current_time() - start) / 60 + 1


def test_a_lost_copy_is_never_emptied_and_unknown_copies_always_are() -> None:
    state = healthy_state()
    times = InSyncTimes()
    times.note(state.copies, 1000.0)
    copy = state.table.shards[0].copies[0]
    assert not times.needs_full_fill(state.copies, 0, copy, 1000.0 + GRACE, GRACE)
    assert times.needs_full_fill(state.copies, 0, copy, 1000.1 + GRACE, GRACE)
    assert times.needs_full_fill(state.copies, 0, "n9", 1000.0, GRACE)
    state.copies.lost[0] = {"n9"}
    assert not times.needs_full_fill(state.copies, 0, "n9", 1e9, GRACE)


async def test_the_node_purges_only_what_it_holds_and_checks_the_body() -> None:
    store = MemoryStore()
    runtime = NodeRuntime(node_id="n1")
    runtime.assign([0], seq=1, lease=30, interval=5)
    client = create_node_app(runtime, store, max_value=1024).test_client()
    await store.put(0, "a", None, 1)
    await store.put(1, "b", None, 2)
    response = await client.post("/tombstones/purge", json={"shards": [0, 1], "older_than": 0})
    assert response.status_code == 200
    assert json.loads(await response.get_data()) == {"purged": {"0": 1}, "not_held": [1]}
    assert (await store.export(1)) == [("b", Record(None, 2))]
    for bad in ({"shards": [0]}, {"shards": [-1], "older_than": 1}, {"older_than": -1}):
        response = await client.post("/tombstones/purge", json=bad)
        assert response.status_code == 400
    await store.put(0, "c", b"x", 3)
    assert (await client.post("/shard/1/wipe")).status_code == 404  # not held: left alone
    assert (await client.post("/shard/0/wipe")).status_code == 200
    assert (await store.export(0)) == []


def test_the_grace_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="TORUA_TOMBSTONE_GRACE"):
        CoordinatorSettings(tombstone_grace=0.5)
    assert CoordinatorSettings().tombstone_grace == 86400.0


@pytest.mark.parametrize("seen_lately", [True, False])
async def test_the_mover_empties_a_copy_away_longer_than_the_grace_before_filling_it(
    seen_lately: bool,
) -> None:
    async with router_rig(["a", "b"]) as rig:
        shard = rig.state.table.shards[0]
        if seen_lately:
            rig.state.in_sync_times.note(rig.state.copies, time.time())
        shard.in_sync.discard("b")
        rig.nodes["a"].records[(0, "kept")] = (b"v", 5)
        # b kept a value whose delete (and tombstone) a may have purged since.
        rig.nodes["b"].records[(0, "doomed")] = (b"old", 1)
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        await mover._fill(0, "b")
        assert shard.in_sync == {"a", "b"}
        assert rig.nodes["b"].records[(0, "kept")] == (b"v", 5)
        # Within the grace a fill merges (what b holds stays); past it, b starts empty.
        assert ((0, "doomed") in rig.nodes["b"].records) == seen_lately


async def test_the_mover_wipes_nothing_when_no_copy_could_give_the_data_back() -> None:
    async with router_rig(["a", "b"]) as rig:
        shard = rig.state.table.shards[0]
        shard.in_sync.discard("b")
        rig.state.health_status["a"] = "unhealthy"
        rig.nodes["b"].records[(0, "only-here")] = (b"v", 1)
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        with pytest.raises(MoveAborted):
            await mover._fill(0, "b")
        assert rig.nodes["b"].records == {(0, "only-here"): (b"v", 1)}


async def test_a_copy_wiped_for_the_grace_is_filled_whole_whatever_its_catch_up_point() -> None:
    """A copy away longer than the grace that also has a catch-up point (it left
    the in-sync set at a write, with its data) is emptied first: a delta from
    that point onto the empty store would leave out every older record."""
    async with router_rig(["a", "b"]) as rig:
        shard = rig.state.table.shards[0]
        shard.in_sync.discard("b")
        rig.state.copies.catch_up.lower(0, "b", 4)  # b held everything up to version 4
        rig.nodes["a"].records[(0, "old")] = (b"v", 2)
        rig.nodes["a"].records[(0, "new")] = (b"v", 5)
        rig.nodes["b"].records[(0, "old")] = (b"v", 2)
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        await mover._fill(0, "b")  # never seen in sync by this coordinator: wiped
        assert rig.nodes["b"].records == {(0, "old"): (b"v", 2), (0, "new"): (b"v", 5)}
