"""Copies a coordinator crash left divergent: a write in flight when it died may
be on some in-sync copies and not others, and nothing marked its key.

Found by the simulator (seed 2056): after the restart one read was served the
in-flight write's value by the copy that took it, and a later read the older
value by the copy that never got it. The saved state now carries a *settled
watermark* (every write at or below it had its outcome recorded), and every
shard with more than one copy is suspect since it after a restart: reads of it
compare every copy, and the mover exchanges the newer records between them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from torua.config import CoordinatorSettings
from torua.coordinator.control.mover import Mover
from torua.coordinator.service import Coordinator
from torua.coordinator.state.persistence import restore, snapshot
from torua.coordinator.state.watermark import save_watermark
from torua.errors import ApiError, Unavailable

from .fake_nodes import RouterRig, router_rig


@asynccontextmanager
async def restarted(before: RouterRig, saved: dict[str, Any]) -> AsyncIterator[RouterRig]:
    """A new coordinator on the same nodes, started from ``saved`` (the crash
    threw away everything the old one held in memory)."""
    async with router_rig(sorted(before.nodes)) as rig:
        restore(rig.state, json.loads(json.dumps(saved)))
        rig.nodes.clear()
        rig.nodes.update(before.nodes)  # the client reads this very dict
        yield rig


async def crash_mid_write(rig: RouterRig) -> dict[str, Any]:
    """k holds 'old' on a and b; a write of 'new' reaches a, then the coordinator
    dies with b's answer outstanding. Returns the state it had saved last (it
    saved once more while the write was in flight, as any change would make it)."""
    await rig.router.write("k", b"old")
    rig.nodes["b"].write_gate = trio.Event()  # b never sees the next write
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rig.router.write, "k", b"new")
        await trio.testing.wait_all_tasks_blocked()
        assert rig.nodes["a"].records[(0, "k")][0] == b"new"
        await rig.persister.flush()
        saved = rig.backend.saved[-1]
        nursery.cancel_scope.cancel()  # the crash: nothing after this is saved
    rig.nodes["b"].write_gate = None
    return saved


async def read(rig: RouterRig) -> bytes | int:
    try:
        return await rig.router.get("k")
    except ApiError as exc:
        return exc.status


async def test_reads_after_a_crash_mid_write_never_go_back_in_time() -> None:
    async with router_rig(["a", "b"]) as before:
        saved = await crash_mid_write(before)
    async with restarted(before, saved) as rig:
        first = await read(rig)  # the primary, a, holds the write in flight
        rig.nodes["a"].fail = "unreachable"  # the next read can only reach b
        second = await read(rig)
    assert first in (b"old", b"new")
    if first == b"new":
        assert second in (b"new", 503), f"read {first!r}, then {second!r}"


async def test_the_saved_watermark_stays_below_every_write_in_flight() -> None:
    async with router_rig(["a", "b"]) as rig:
        saved = await crash_mid_write(rig)
        in_flight = rig.nodes["a"].records[(0, "k")][1]
        assert saved["settled"] < in_flight
        await rig.router.write("k", b"later")  # nothing in flight now
        written = rig.nodes["a"].records[(0, "k")][1]
        assert snapshot(rig.state)["settled"] >= written


async def test_the_mover_reconciles_a_suspect_shard_then_reads_go_to_one_copy() -> None:
    async with router_rig(["a", "b"]) as before:
        saved = await crash_mid_write(before)
        before.nodes["b"].records[(0, "only-b")] = (b"x", saved["settled"] + 1)
    async with restarted(before, saved) as rig:
        assert rig.router.needs_settle(0, "k")
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        await mover._reconcile(0)
        a, b = rig.nodes["a"], rig.nodes["b"]
        assert a.records == b.records
        assert a.records[(0, "k")][0] == b"new"
        assert a.records[(0, "only-b")][0] == b"x"
        # Only the records above the watermark crossed, both ways.
        assert [since for _, since in a.exports + b.exports] == [saved["settled"]] * 2
        assert not rig.router.needs_settle(0, "k")
        await rig.persister.flush()
        assert rig.backend.saved[-1]["suspect"] == {}


async def test_a_shard_stays_suspect_until_a_reconcile_reaches_every_copy() -> None:
    async with router_rig(["a", "b"]) as before:
        saved = await crash_mid_write(before)
    async with restarted(before, saved) as rig:
        rig.nodes["b"].fail = "unreachable"
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        with pytest.raises(Exception):  # noqa: B017 - whichever way the copy fails
            await mover._reconcile(0)
        assert rig.router.needs_settle(0, "k")
        # A later write moves the watermark on; the shard's own point stays.
        rig.nodes["b"].fail = None
        await rig.router.write("other", b"v")
        await rig.persister.flush()
        again = rig.backend.saved[-1]
        assert again["settled"] > saved["settled"]
        assert again["suspect"] == {"0": saved["settled"]}
    # Crashed again before the reconcile ended: the next start still knows.
    async with restarted(rig, again) as rig:
        assert rig.state.suspects.since(0) == saved["settled"]


async def test_a_shard_with_one_copy_is_never_suspect() -> None:
    async with router_rig(["a"]) as before:
        await before.router.write("k", b"v")
        await before.persister.flush()
        saved = before.backend.saved[-1]
    async with restarted(before, saved) as rig:
        assert not rig.router.needs_settle(0, "k")


async def test_a_cancelled_write_leaves_its_key_unsettled() -> None:
    """A write cancelled on its way (the client went, the coordinator is stopping)
    may be on one copy only: reads of its key compare the copies, and the
    watermark moves past it only together with that mark."""
    async with router_rig(["a", "b"]) as rig:
        await crash_mid_write(rig)
        assert rig.state.copies.is_unsettled(0, "k")
        await rig.persister.flush()
        assert rig.backend.saved[-1]["unsettled"] == {"0": ["k"]}
        assert rig.backend.saved[-1]["settled"] >= rig.nodes["a"].records[(0, "k")][1]
        rig.nodes["a"].fail = "unreachable"
        with pytest.raises(Unavailable):  # b alone cannot tell which copy is right
            await rig.router.get("k")


async def test_a_moved_watermark_is_saved_within_the_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with router_rig(["a", "b"]) as rig, trio.open_nursery() as nursery:
        await rig.router.write("k", b"v")
        await rig.persister.flush()
        saves = len(rig.backend.saved)
        await nursery.start(save_watermark, rig.state, rig.persister, 2.0)
        await trio.sleep(5)
        assert len(rig.backend.saved) == saves, "saved with nothing new"
        rig.backend.saved.clear()
        await rig.router.write("k", b"w")  # no save of its own
        written = rig.nodes["a"].records[(0, "k")][1]
        await trio.sleep(2.0)  # one interval, on the virtual clock
        assert len(rig.backend.saved) == 1
        assert rig.backend.saved[-1]["settled"] >= written
        nursery.cancel_scope.cancel()


async def test_a_suspect_shard_purges_no_tombstones_until_reconciled() -> None:
    from torua.coordinator.control.tombstone_collector import TombstoneCollector

    async with router_rig(["a", "b"]) as before:
        saved = await crash_mid_write(before)
    async with restarted(before, saved) as rig:
        collector = TombstoneCollector(rig.state, rig.client)  # type: ignore[arg-type]
        assert collector.plan() == {}
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        await mover._reconcile(0)
        assert collector.plan() == {"a": [0], "b": [0]}


async def test_a_suspect_shard_left_with_one_copy_or_none_is_cleared() -> None:
    """Placement may take a suspect shard's copies away before its reconcile: a
    lone copy (or none) has nothing to disagree with."""
    async with router_rig(["a", "b"], shards=2) as before:
        saved = await crash_mid_write(before)
    async with restarted(before, saved) as rig:
        rig.state.table.shards[0].copies = []
        rig.state.table.shards[0].in_sync = set()
        rig.state.table.shards[1].copies = ["b"]
        rig.state.table.shards[1].in_sync = {"b"}
        mover = Mover(rig.state, rig.client, rig.sync, rig.tracker, rig.actions)  # type: ignore[arg-type]
        await mover._reconcile(0)
        await mover._reconcile(1)
        assert len(rig.state.suspects) == 0
        assert rig.nodes["a"].exports == rig.nodes["b"].exports == []


async def test_a_bulk_write_in_flight_holds_the_watermark_below_it_too() -> None:
    from torua.coordinator.data.bulk import BulkBody, run_bulk

    async with router_rig(["a", "b"]) as before:
        await before.router.write("k", b"old")
        before.nodes["b"].write_gate = trio.Event()
        body = BulkBody.model_validate({"ops": [{"op": "put", "key": "k", "value": "new"}]})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_bulk, before.state, before.router, before.client, body)
            await trio.testing.wait_all_tasks_blocked()
            assert before.nodes["a"].records[(0, "k")][0] == b"new"
            await before.persister.flush()
            saved = before.backend.saved[-1]
            nursery.cancel_scope.cancel()
        before.nodes["b"].write_gate = None
        assert saved["settled"] < before.nodes["a"].records[(0, "k")][1]
    async with restarted(before, saved) as rig:
        first = await read(rig)
        rig.nodes["a"].fail = "unreachable"
        assert (first, await read(rig)) in ((b"new", 503), (b"old", 503), (b"old", b"old"))


async def test_a_clean_stop_leaves_nothing_to_doubt_but_a_crash_does() -> None:
    """Reconciling every shard after every restart walked every shard for nothing
    when the coordinator had stopped cleanly: its last save says no write was in
    flight, and the next start trusts the copies."""
    async with router_rig(["a", "b"]) as before:
        await before.router.write("k", b"v")
        before.state.writes_closed = True  # the server has stopped for good
        await before.persister.flush()
        clean = before.backend.saved[-1]
    assert clean["stopped_clean"] is True
    async with restarted(before, clean) as rig:
        assert len(rig.state.suspects) == 0
        assert not rig.router.needs_settle(0, "k")
        await rig.router.write("k", b"w")  # its block is saved first: no longer clean
        assert rig.backend.saved[-1]["stopped_clean"] is False
    async with router_rig(["a", "b"]) as before:
        saved = await crash_mid_write(before)
    assert saved["stopped_clean"] is False
    async with restarted(before, saved) as rig:
        assert rig.router.needs_settle(0, "k")


async def test_a_stop_with_a_write_still_in_flight_is_not_clean() -> None:
    async with router_rig(["a", "b"]) as rig:
        rig.nodes["b"].write_gate = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.router.write, "k", b"new")
            await trio.testing.wait_all_tasks_blocked()
            rig.state.writes_closed = True
            await rig.persister.flush()
            assert rig.backend.saved[-1]["stopped_clean"] is False
            nursery.cancel_scope.cancel()
        rig.nodes["b"].write_gate = None


async def test_a_coordinator_stopped_cleanly_says_so_in_its_state_file(tmp_path: Path) -> None:
    settings = CoordinatorSettings(
        host="127.0.0.1", port=0, data_dir=str(tmp_path), shards=4, replication_factor=2
    )
    async with trio.open_nursery() as nursery:
        coordinator = Coordinator(settings)
        await nursery.start(coordinator.run)
        coordinator.stop()
    saved = json.loads((tmp_path / "coordinator" / "state.json").read_text())
    assert saved["stopped_clean"] is True
    async with trio.open_nursery() as nursery:
        again = Coordinator(settings)
        await nursery.start(again.run)
        assert again.services is not None
        await again.services.persister.flush()
        saved = json.loads((tmp_path / "coordinator" / "state.json").read_text())
        assert saved["stopped_clean"] is False  # running: writes may start
        nursery.cancel_scope.cancel()  # a crash, not a stop: nothing more is vouched for
    saved = json.loads((tmp_path / "coordinator" / "state.json").read_text())
    assert saved["stopped_clean"] is False
