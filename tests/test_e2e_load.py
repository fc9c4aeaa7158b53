"""Load-aware placement against real processes: two hot shards on one node, one moves.

A coordinator and two nodes (one copy per shard, two shards each). Readers
hammer both shards of n1 while n2's shards see a trickle and a writer runs
throughout. Once ``GET /shards`` shows the skew, ``POST /rebalance {"by":
"load"}`` must move exactly one of the two hot shards to n2 (moving both would
just move the peak), every read must keep succeeding, and every acknowledged
write must read back afterwards.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from torua.cluster import shard_for_key

from .checker import AckedWrites
from .procs import ProcessGroup, wait_until

pytestmark = pytest.mark.e2e

SHARDS = 4
ENV = {
    "HEALTH_CHECK_INTERVAL": "1s",
    "TORUA_SHARDS": str(SHARDS),
    "TORUA_REPLICATION_FACTOR": "1",
}


def keys_by_shard(per_shard: int) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {s: [] for s in range(SHARDS)}
    i = 0
    while any(len(keys) < per_shard for keys in found.values()):
        key = f"key-{i}"
        if len(found[shard_for_key(key, SHARDS)]) < per_shard:
            found[shard_for_key(key, SHARDS)].append(key)
        i += 1
    return found


async def test_rebalance_by_load_moves_one_of_two_hot_shards_and_loses_nothing() -> None:
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(ENV)
        for node in ("n1", "n2"):
            await group.node(node, coordinator.url, ENV)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=30) as http:

            async def green() -> bool:
                info = (await http.get("/cluster/info")).json()
                return info["cluster_state"] == "green" and info["healthy_nodes"] == 2

            await wait_until(green, within=20, what="green cluster")
            shards = (await http.get("/shards")).json()["shards"]
            hot = sorted(s["shard_id"] for s in shards if s["primary"] == "n1")
            cold = sorted(s["shard_id"] for s in shards if s["primary"] == "n2")
            assert len(hot) == 2 and len(cold) == 2, shards

            checker = AckedWrites()
            keys = keys_by_shard(20)
            for shard_keys in keys.values():
                for key in shard_keys:
                    assert await checker.put(http, key, f"{key}-initial".encode())
            read_errors: list[str] = []
            reads = [0]
            stop = trio.Event()

            async def reader(shard_ids: list[int], pause: float) -> None:
                while not stop.is_set():
                    for shard_id in shard_ids:
                        for key in keys[shard_id]:
                            response = await http.get(f"/data/{key}")
                            reads[0] += 1
                            if response.status_code != 200:
                                read_errors.append(f"{key}: HTTP {response.status_code}")
                            if pause:
                                await trio.sleep(pause)

            async def skew_shown() -> dict[int, float] | None:
                view = (await http.get("/shards")).json()["shards"]
                rates = {s["shard_id"]: s["rate"] for s in view}
                if any(rates[s] is None for s in rates):
                    return None
                quiet = max(rates[s] for s in cold)
                return rates if min(rates[s] for s in hot) > 5 * max(quiet, 1.0) else None

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(reader, hot, 0.0)
                nursery.start_soon(reader, cold, 0.2)
                nursery.start_soon(
                    lambda: checker.run_writer(http, 40, prefix="w", stop=stop, pause=0.05)
                )
                rates = await wait_until(skew_shown, within=30, what="hot shards' rates shown")
                response = await http.post("/rebalance", json={"by": "load"})
                assert response.status_code == 200, response.text
                result = response.json()
                reads_at_rebalance = reads[0]

                async def read_on_after_the_move() -> bool:
                    return reads[0] > reads_at_rebalance + 100

                await wait_until(read_on_after_the_move, within=20, what="reads after the move")
                stop.set()

            assert result["done"] is True
            moves = [
                (m["shard_id"], m["source"], m["target"], m["reason"]) for m in result["moves"]
            ]
            assert len(moves) == 1, (moves, rates)
            moved = moves[0][0]
            assert moved in hot and moves[0][1:] == ("n1", "n2", "load")
            after = {s["shard_id"]: s for s in (await http.get("/shards")).json()["shards"]}
            assert after[moved]["primary"] == "n2"
            assert [after[s]["primary"] for s in hot if s != moved] == ["n1"]
            assert all(after[s]["primary"] == "n2" for s in cold)
            assert not read_errors, read_errors[:10]
            assert await checker.lost(http) == []
            assert checker.acked, "the writer was acknowledged nothing"

            history = (await http.get("/load")).json()
            assert {n["id"] for n in history["nodes"]} == {"n1", "n2"}
            assert all(len(n["points"]) >= 2 for n in history["nodes"])
            assert len(history["shards"]) == SHARDS
    print(f"rates before the move (requests/s by shard): {rates}; moved shard {moved}")
