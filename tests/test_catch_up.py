"""Catch-up points (where a delta fill starts) against the router's writes."""

from __future__ import annotations

import trio
import trio.testing

from torua.cluster.copies import Copies

from .fake_nodes import router_rig


async def test_a_write_older_than_a_copys_point_is_saved_before_it_is_acknowledged() -> None:
    async with router_rig(["a", "b"]) as rig:
        await rig.router.write("k", b"v0")  # reserves a block of versions, saved
        copies = rig.state.copies
        shard = rig.state.table.shards[0]
        # b left the in-sync set at a later write: its point is above what comes next,
        # as for a write that took its version before and was still in flight.
        rig.state.health_status["b"] = "unhealthy"
        shard.in_sync.discard("b")
        point = rig.state.version_hwm + 1000
        copies.catch_up.lower(0, "b", point)
        rig.backend.open = trio.Event()
        acked: list[bytes] = []

        async def write() -> None:
            await rig.router.write("k", b"v1")
            acked.append(b"v1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            assert acked == [], "acknowledged before the lower point was saved"
            lowered = copies.catch_up_from(0, "b")
            assert lowered < point
            rig.backend.open.set()
        assert acked == [b"v1"]
        assert [0, "b", lowered] in rig.backend.saved[-1]["since"]


async def test_points_round_trip_and_are_forgotten_with_the_data() -> None:
    async with router_rig(["a", "b"]) as rig:
        rig.nodes["b"].fail = "500"
        await rig.router.write("k", b"v")
        version = rig.state.version_hwm
        copies = rig.state.copies
        assert copies.catch_up_from(0, "b") == version - 1
        again = Copies.from_json(copies.to_json(), default_floor=0)
        assert again.catch_up_from(0, "b") == version - 1
        again.data_lost("b")
        assert again.catch_up_from(0, "b") == 0  # emptied: a full fill
