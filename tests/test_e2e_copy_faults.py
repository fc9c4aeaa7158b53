"""Faults that bend copies, against real processes: the coordinator's clock
stepping back, two R=1 losses in a row, in-memory nodes restarted while the
coordinator is down, and a move whose target dies mid-fill.

Each scenario ends with an acknowledged write read back (or an honest 503),
never an older value, a false 404, or a silently dropped write.
"""

from __future__ import annotations

import glob
import os
import random
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from torua.cluster import shard_for_key

from .procs import Proc, ProcessGroup, wait_until
from .test_e2e_cluster import free_port, nodes_by_id
from .test_e2e_durability import green

pytestmark = pytest.mark.e2e

FAST = {"HEALTH_CHECK_INTERVAL": "1s"}
LEASE = 3 * 1.0 + 0.5  # a node's lease under FAST: three intervals plus the probe timeout


def find_libfaketime() -> str | None:
    """The preload library of Debian's libfaketime package, wherever the arch puts it."""
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/*/faketime/libfaketime.so.1"):
        if found := sorted(glob.glob(pattern)):
            return found[0]
    try:
        listed = subprocess.run(
            ["dpkg", "-L", "libfaketime"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return None
    return next((p for p in listed.split() if p.endswith("/libfaketime.so.1")), None)


LIBFAKETIME = find_libfaketime()

# Skips on a machine without libfaketime, except in CI (.ci/run installs it).
needs_faketime = pytest.mark.skipif(
    LIBFAKETIME is None and not os.environ.get("CI"),
    reason="libfaketime is not installed (apt-get install faketime); CI installs it",
)


async def start_cluster(
    group: ProcessGroup, tmp: Path, env: dict[str, str], *, port: int = 0
) -> tuple[Proc, dict[str, Proc]]:
    """A durable coordinator and three durable nodes."""
    coordinator = await group.coordinator(env, data_dir=tmp, port=port)
    nodes = {n: await group.node(n, coordinator.url, env, data_dir=tmp) for n in ("n1", "n2", "n3")}
    return coordinator, nodes


async def shard_of(http: httpx.AsyncClient, shard_id: int) -> dict:
    return (await http.get("/shards")).json()["shards"][shard_id]


async def healthy(http: httpx.AsyncClient, node_id: str) -> bool:
    node = (await nodes_by_id(http)).get(node_id)
    return node is not None and node["status"] == "healthy"


# -- 1. the coordinator's wall clock steps back ---------------------------------


@needs_faketime
async def test_writes_after_the_coordinators_clock_stepped_back_are_kept(tmp_path: Path) -> None:
    assert LIBFAKETIME is not None, "libfaketime is missing (apt-get install faketime)"
    port = free_port()
    keys = [f"clock-{i}" for i in range(20)]
    async with ProcessGroup() as group:
        coordinator, _ = await start_cluster(group, tmp_path, FAST, port=port)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            for key in keys:
                assert (await http.put(f"/data/{key}", content=b"v1")).status_code == 204
            coordinator.kill()
            await coordinator.wait()
            # Only the wall clock steps back: Trio's deadlines run on the monotonic clock.
            skewed = {
                **FAST,
                "LD_PRELOAD": LIBFAKETIME,
                "FAKETIME": "-120s",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
            await group.coordinator(skewed, data_dir=tmp_path, port=port)
            await wait_until(lambda: green(http), within=30, what="green after the restart")
            wrong = await _acked_writes_kept(http, keys, b"v2")
            assert wrong == [], f"{len(wrong)} acknowledged writes not kept: {wrong[:3]}"
            # Long enough for every lease granted before the restart to lapse: the
            # nodes must take the skewed coordinator's assignments, or stop serving.
            await trio.sleep(3 * LEASE)
            wrong = await _acked_writes_kept(http, keys, b"v3")
            assert wrong == [], f"after 3 leases, {len(wrong)} writes not kept: {wrong[:3]}"


async def _acked_writes_kept(http: httpx.AsyncClient, keys: list[str], value: bytes) -> list[str]:
    """Write, read back, delete, read back every key; returns what went wrong."""
    wrong: list[str] = []
    for key in keys:
        put = await http.put(f"/data/{key}", content=value)
        got = await http.get(f"/data/{key}")
        if put.status_code != 204 or (got.status_code, got.content) != (200, value):
            wrong.append(
                f"{key}: PUT {put.status_code}, GET {got.status_code} {got.content[:20]!r}"
            )
    for key in keys[: len(keys) // 2]:
        deleted = await http.delete(f"/data/{key}")
        got = await http.get(f"/data/{key}")
        if deleted.status_code != 204 or got.status_code != 404:
            wrong.append(
                f"{key}: DELETE {deleted.status_code}, then GET {got.status_code} "
                f"{got.content[:20]!r}"
            )
    return wrong


# -- 2. two R=1 losses in a row -------------------------------------------------


async def test_two_r1_losses_in_a_row_never_bring_back_an_older_value(tmp_path: Path) -> None:
    env = {**FAST, "TORUA_REPLICATION_FACTOR": "1"}
    key = "twice-lost"
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, env)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            shard_id = shard_for_key(key, len((await http.get("/shards")).json()["shards"]))
            assert (await http.put(f"/data/{key}", content=b"v1")).status_code == 204
            n_a = (await shard_of(http, shard_id))["primary"]
            nodes[n_a].kill()
            await nodes[n_a].wait()
            n_b = await wait_until(
                lambda: _moved_from(http, shard_id, n_a), within=20, what="shard off n_a"
            )
            assert (await http.put(f"/data/{key}", content=b"v2")).status_code == 204
            nodes[n_b].kill()
            await nodes[n_b].wait()
            n_c = await wait_until(
                lambda: _moved_from(http, shard_id, n_b), within=20, what="shard off n_b"
            )
            assert n_c not in (n_a, n_b)
            nodes[n_a] = await group.node(n_a, coordinator.url, env, data_dir=tmp_path)
            await wait_until(lambda: healthy(http, n_a), within=20, what="n_a back")
            # n_b, which may hold newer data than n_a, is still missing: whatever n_a
            # brings back (its merge runs within a mover round), no read may go back
            # to v1. Checked over a window of several rounds, not at one instant.
            answers = await _answers_over(http, key, seconds=5.0)
            older = [a for a in answers if a not in ((200, b"v2"), (503, None))]
            assert older == [], f"with n_b down, GET answered {sorted(set(older))}"
            nodes[n_b] = await group.node(n_b, coordinator.url, env, data_dir=tmp_path)
            await wait_until(lambda: green(http), within=30, what="green with n_b back")
            got = await http.get(f"/data/{key}")
            assert (got.status_code, got.content) == (200, b"v2")


async def _answers_over(
    http: httpx.AsyncClient, key: str, *, seconds: float
) -> list[tuple[int, bytes | None]]:
    """Every answer to GET key for ``seconds``: a property that must hold throughout."""
    answers: list[tuple[int, bytes | None]] = []
    with trio.move_on_after(seconds):
        while True:
            got = await http.get(f"/data/{key}")
            answers.append((got.status_code, got.content if got.status_code == 200 else None))
            await trio.sleep(0.1)
    return answers


async def _moved_from(http: httpx.AsyncClient, shard_id: int, node_id: str) -> str | None:
    primary = (await shard_of(http, shard_id))["primary"]
    return primary if primary not in (None, node_id) else None


# -- 3. in-memory nodes restarted while the coordinator is down -----------------


async def test_an_empty_restarted_memory_node_is_never_taken_as_a_copy(tmp_path: Path) -> None:
    port = free_port()
    # In-memory nodes, each on a fixed address: a restarted node comes back where it was.
    node_env = {**FAST, "TORUA_MEMORY": "1"}
    listen = {n: ["--listen", f"127.0.0.1:{free_port()}"] for n in ("n1", "n2", "n3")}
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(FAST, data_dir=tmp_path, port=port)
        nodes = {n: await group.node(n, coordinator.url, node_env, *listen[n]) for n in listen}
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            acked = {f"mem-{i}": f"value-{i}".encode() for i in range(200)}
            for key, value in acked.items():
                assert (await http.put(f"/data/{key}", content=value)).status_code == 204
            coordinator.kill()
            await coordinator.wait()
            nodes["n1"].kill()
            await nodes["n1"].wait()
            n1 = await group.node("n1", coordinator.url, node_env, *listen["n1"])
            async with httpx.AsyncClient(base_url=n1.url, timeout=2) as node_http:
                await wait_until(
                    lambda: _answers(node_http), within=10, what="restarted n1 serving"
                )
            # The coordinator stays down a while: n1 keeps trying to register, and
            # every lease the others hold runs on (two probe intervals of outage).
            await trio.sleep(2.0)
            await group.coordinator(FAST, data_dir=tmp_path, port=port)
            await wait_until(lambda: green(http), within=40, what="green after the restart")
            wrong = []
            for key, value in acked.items():
                got = await http.get(f"/data/{key}")
                if (got.status_code, got.content) != (200, value):
                    wrong.append(f"{key}: {got.status_code} {got.content[:30]!r}")
            assert wrong == [], f"{len(wrong)} of {len(acked)} acknowledged keys: {wrong[:5]}"


async def _answers(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health")).status_code == 200
    except httpx.HTTPError:
        return False


# -- 4. a move whose target dies mid-fill ---------------------------------------

BULK_OPS = 10_000  # the most one /data/_bulk request takes


async def test_a_move_whose_target_dies_mid_fill_is_rolled_back(tmp_path: Path) -> None:
    env = {**FAST, "TORUA_REPLICATION_FACTOR": "1", "TORUA_SHARDS": "2"}
    acked = {f"fill-{i}": f"value-{i}-{'x' * 40}" for i in range(40_000)}
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, env)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=60) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            items = list(acked.items())
            for start in range(0, len(items), BULK_OPS):
                ops = [
                    {"op": "put", "key": k, "value": v} for k, v in items[start : start + BULK_OPS]
                ]
                response = await http.post("/data/_bulk", json={"ops": ops})
                assert response.status_code == 200, response.text
                assert {r["status"] for r in response.json()["results"]} == {204}
            in_shard_0 = sum(1 for k in acked if shard_for_key(k, 2) == 0)
            old = (await shard_of(http, 0))["primary"]
            holders = {(await shard_of(http, 1))["primary"], old}
            # The node that holds nothing: its death takes no other shard with it.
            target = min(n for n in nodes if n not in holders)
            answer: list[httpx.Response] = []
            unreadable: list[str] = []
            async with trio.open_nursery() as nursery:

                async def assign() -> None:
                    body = {"shard_id": 0, "node_id": target}
                    answer.append(await http.post("/shards/assign", json=body))
                    nursery.cancel_scope.cancel()  # the reader below stops with it

                async def reader() -> None:
                    # The old copy serves throughout: during the fill, right after
                    # the kill, and while the assign is still deciding.
                    for round_ in range(10**6):
                        unreadable.extend(await _unreadable(http, acked, sample=1_000, seed=round_))

                nursery.start_soon(assign)
                nursery.start_soon(reader)
                async with httpx.AsyncClient(base_url=nodes[target].url, timeout=2) as node_http:
                    await wait_until(
                        lambda: _part_filled(node_http, in_shard_0 // 2),
                        within=30,
                        every=0.01,
                        what="target part-way through its fill",
                    )
                nodes[target].kill()
                await nodes[target].wait()
            assert nodes[target].process.returncode is not None, "assign answered before the kill"
            assert unreadable == [], f"{len(unreadable)} reads failed: {unreadable[:5]}"
            assert len(answer) == 1
            response = answer[0]
            assert response.status_code in (409, 503), (response.status_code, response.text)
            assert response.json()["error"] == "move_failed", response.text
            shard = await shard_of(http, 0)
            assert target not in [shard["primary"], *shard["replicas"]], shard
            assert await _unreadable(http, acked) == []
            await wait_until(lambda: _settled_without(http, target), within=30, what="settled")
            assert await _unreadable(http, acked) == []
            info = (await http.get(f"/nodes/{old}/info")).json()
            assert info["status"] == "healthy"


async def _part_filled(http: httpx.AsyncClient, most: int) -> bool:
    """Some keys, at most ``most``: half the shard leaves the fill no way to finish
    between this answer and the SIGKILL that follows it."""
    try:
        response = await http.get("/shard/0/stats")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and 0 < response.json()["keys"] <= most


async def _settled_without(http: httpx.AsyncClient, dead: str) -> bool:
    shards = (await http.get("/shards")).json()["shards"]
    return all(
        s["state"] == "active" and dead not in [s["primary"], *s["replicas"]] for s in shards
    )


async def _unreadable(
    http: httpx.AsyncClient, acked: dict[str, str], *, sample: int | None = None, seed: int = 0
) -> list[str]:
    """Keys that do not read back their acknowledged value, through the bulk API."""
    keys = list(acked)
    if sample is not None:
        keys = random.Random(seed).sample(keys, sample)
    wrong: list[str] = []
    for start in range(0, len(keys), BULK_OPS):
        ops = [{"op": "get", "key": k} for k in keys[start : start + BULK_OPS]]
        response = await http.post("/data/_bulk", json={"ops": ops})
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:
            if (result["status"], result.get("value")) != (200, acked[result["key"]]):
                wrong.append(f"{result['key']}: {result['status']} {result.get('error')}")
    return wrong
