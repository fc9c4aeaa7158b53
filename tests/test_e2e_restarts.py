"""Nodes that go away and come back: planned restarts and the replica delay.

Real processes on loopback. Each scenario runs a writer throughout and checks
every acknowledged write afterwards (:class:`tests.checker.AckedWrites`); the
figures (bytes of a delta catch-up against a full fill, seconds) are printed
for the report (``pytest -s``).
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from .checker import AckedWrites
from .procs import ProcessGroup, get_json, stop_up, wait_until
from .test_e2e_durability import _token, green, start_cluster
from .test_examples import free_port_run

pytestmark = pytest.mark.e2e

FAST = {"HEALTH_CHECK_INTERVAL": "1s", "HEALTH_CHECK_TIMEOUT": "500ms"}
VALUE = "x" * 200


async def load_keys(http: httpx.AsyncClient, count: int) -> None:
    for start in range(0, count, 1000):
        ops = [
            {"op": "put", "key": f"bulk-{i}", "value": f"{i}-{VALUE}"}
            for i in range(start, min(count, start + 1000))
        ]
        response = await http.post("/data/_bulk", json={"ops": ops})
        assert response.status_code == 200, response.text
        assert all(r.get("status") == 204 for r in response.json()["results"]), response.text[:300]


async def fill_bytes(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    found = re.findall(r'^torua_fill_bytes_total\{kind="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {kind: float(value) for kind, value in found}


async def copies(http: httpx.AsyncClient) -> dict[int, set[str]]:
    shards = (await http.get("/shards")).json()["shards"]
    return {s["shard_id"]: {s["primary"], *s["replicas"]} - {None} for s in shards}


async def shutdown_status(http: httpx.AsyncClient, node: str) -> str:
    return (await http.get(f"/nodes/{node}/shutdown")).json()["status"]


async def node_status(http: httpx.AsyncClient, node: str) -> str:
    nodes = (await http.get("/nodes")).json()["nodes"]
    return {n["id"]: n["status"] for n in nodes}[node]


async def test_planned_restart_moves_no_copy_and_catches_up_by_delta(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, 3, FAST)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            await load_keys(http, 10_000)
            await wait_until(lambda: green(http), within=20, what="green after loading")
            info = await get_json(nodes["n2"].url, "/info")
            held_bytes = sum(s["bytes"] for s in info["shards"])
            held_keys = sum(s["keys"] for s in info["shards"])
            before, filled_before = await copies(http), await fill_bytes(http)

            response = await http.put(
                "/nodes/n2/shutdown", json={"type": "restart", "allocation_delay": "2m"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "waiting"

            checker, stop = AckedWrites(), trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 300, stop=stop))
                await wait_until(lambda: _acked(checker, 200), within=20, what="writes")
                started = time.monotonic()
                # SIGTERM: the node asks to leave, and is told to keep its copies.
                assert await group.stop(nodes["n2"], signum=signal.SIGTERM) == 0
                assert await shutdown_status(http, "n2") == "away"
                shards = (await http.get("/shards")).json()["shards"]
                yellow = [s for s in shards if s["health"] == "yellow"]
                assert yellow and all("n2 is away" in s["reason"] for s in yellow)
                target = _done(checker) + 300
                await wait_until(
                    lambda: _acked(checker, target), within=20, what="writes while n2 is away"
                )
                assert await copies(http) == before, "a copy moved while n2 was away"
                restarted = time.monotonic()
                nodes["n2"] = await group.node("n2", coordinator.url, FAST, data_dir=tmp_path)
                await wait_until(
                    lambda: _is(shutdown_status(http, "n2"), "complete"), within=30, what="back"
                )
                await wait_until(lambda: green(http), within=60, what="green after the restart")
                seconds, back = time.monotonic() - started, time.monotonic() - restarted
                stop.set()
            assert await copies(http) == before, "a copy moved during the restart"
            filled = await fill_bytes(http)
            delta = filled.get("delta", 0) - filled_before.get("delta", 0)
            full = filled.get("full", 0) - filled_before.get("full", 0)
            print(
                f"\nplanned restart of n2 ({held_keys} keys, {held_bytes} bytes held): "
                f"delta catch-up moved {delta:.0f} bytes, full fills {full:.0f} bytes, "
                f"{seconds:.1f}s from stop to green, {back:.1f}s from start to green; "
                f"{_done(checker)} writes acknowledged, "
                f"{checker.failures} failed"
            )
            assert full == 0, "a copy was filled from scratch"
            assert 0 < delta < held_bytes / 10
            assert await checker.lost(http) == []
            assert (await http.delete("/nodes/n2/shutdown")).status_code == 204
            assert (await http.get("/nodes/n2/shutdown")).status_code == 404

            # For comparison, and for the rule that a copy that lost its data is
            # never caught up by delta: the same restart with n2's data wiped.
            await http.put("/nodes/n2/shutdown", json={"type": "restart"})
            assert await group.stop(nodes["n2"], signum=signal.SIGTERM) == 0
            shutil.rmtree(tmp_path / "n2")
            started = time.monotonic()
            nodes["n2"] = await group.node("n2", coordinator.url, FAST, data_dir=tmp_path)
            await wait_until(lambda: green(http), within=60, what="green after the wipe")
            wiped = time.monotonic() - started
            again = await fill_bytes(http)
            full = again.get("full", 0) - filled.get("full", 0)
            assert again.get("delta", 0) == filled.get("delta", 0)
            assert full >= held_bytes * 0.9
            print(
                f"the same restart with its data wiped: full fills {full:.0f} bytes, "
                f"{wiped:.1f}s from start to green"
            )
            assert await checker.lost(http) == []
            assert await copies(http) == before


def _done(checker: AckedWrites) -> int:
    return checker.attempts - checker.failures


async def _acked(checker: AckedWrites, count: int) -> bool:
    return _done(checker) >= count


async def _is(value, expected: str) -> bool:
    return await value == expected


async def test_replica_delay_holds_a_short_freeze_and_rebuilds_after_a_long_one(
    tmp_path: Path,
) -> None:
    env = {**FAST, "HEALTH_CHECK_FAILURES": "2", "TORUA_REPLICA_DELAY": "8s"}
    async with ProcessGroup() as group:
        coordinator, nodes = await start_cluster(group, tmp_path, 3, env)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:
            await wait_until(lambda: green(http), within=20, what="green cluster")
            config = (await http.get("/cluster/config")).json()
            assert config["replica_delay"] == "8s"
            await load_keys(http, 2000)
            before = await copies(http)
            checker, stop = AckedWrites(), trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 200, stop=stop))
                # Shorter than the delay: nothing moves; the copies catch up by delta.
                filled_before = await fill_bytes(http)
                nodes["n3"].suspend()
                await wait_until(
                    lambda: _is(node_status(http, "n3"), "unhealthy"), within=10, what="unhealthy"
                )
                view = {n["id"]: n for n in (await http.get("/nodes")).json()["nodes"]}["n3"]
                assert view["shutdown"] == "away"
                nodes["n3"].resume()
                await wait_until(lambda: green(http), within=30, what="green after the freeze")
                assert await copies(http) == before, "a copy moved within the replica delay"
                filled = await fill_bytes(http)
                assert filled.get("full", 0) == filled_before.get("full", 0)
                assert filled.get("delta", 0) > filled_before.get("delta", 0)

                # Longer than the delay: the rebuild starts when the delay passes.
                nodes["n3"].suspend()
                await wait_until(
                    lambda: _is(node_status(http, "n3"), "unhealthy"), within=10, what="unhealthy"
                )
                marked = time.monotonic()
                assert await copies(http) == before
                await wait_until(
                    lambda: _moved_off(http, "n3"), within=30, what="copies rebuilt elsewhere"
                )
                waited = time.monotonic() - marked
                print(f"\nrebuild of n3's copies started {waited:.1f}s after it was marked down")
                assert waited >= 6.0, "copies were rebuilt before the delay passed"
                await wait_until(lambda: _readable(http), within=60, what="rebuilt")
                stop.set()
            nodes["n3"].resume()
            assert await checker.lost(http) == []


async def _moved_off(http: httpx.AsyncClient, node: str) -> bool:
    return all(node not in held for held in (await copies(http)).values())


async def _readable(http: httpx.AsyncClient) -> bool:
    shards = (await http.get("/shards")).json()["shards"]
    return all(len(s["in_sync"]) == 2 for s in shards)


def _node_pids(up_pid: int) -> dict[str, int]:
    """up's node children by id (from their command lines)."""
    pids = {}
    for child in psutil.Process(up_pid).children():
        argv = child.cmdline()
        if "node" in argv and "--id" in argv:
            pids[argv[argv.index("--id") + 1]] = child.pid
    return pids


@pytest.mark.parametrize("store", ["durable", "memory"])
async def test_rolling_restart_of_an_up_cluster_under_a_writer(tmp_path: Path, store: str) -> None:
    """Durable nodes catch up by delta; in-memory ones come back empty (a new
    incarnation) and are filled in full: either way nothing acknowledged is lost."""
    port = free_port_run(4)
    keep = ["--data-dir", str(tmp_path)] if store == "durable" else ["--memory"]
    argv = ["up", "--nodes", "3", "--port", str(port), *keep]
    async with ProcessGroup() as group:
        up = await group.start("up", argv, FAST, ready_within=60)
        token = await wait_until(partial(_token, up.output), within=5, what="token line")
        headers = {"Authorization": f"Bearer {token}"}
        before = _node_pids(up.pid)
        assert sorted(before) == ["n1", "n2", "n3"]
        async with httpx.AsyncClient(base_url=up.url, timeout=10, headers=headers) as http:
            await wait_until(lambda: green(http), within=30, what="green cluster")
            checker, stop = AckedWrites(), trio.Event()
            most_away, timeline = 0, []
            started = time.monotonic()

            async def watch_away() -> None:
                nonlocal most_away
                while not stop.is_set():
                    nodes = (await http.get("/nodes")).json()["nodes"]
                    away = sorted(
                        n["id"]
                        for n in nodes
                        if n["status"] != "healthy" or n["shutdown"] in ("away", "returning")
                    )
                    most_away = max(most_away, len(away))
                    state = (await http.get("/cluster/info")).json()["cluster_state"]
                    moment = (state, ",".join(away) or "-")
                    if not timeline or timeline[-1][1:] != moment:
                        timeline.append((round(time.monotonic() - started, 1), *moment))
                    await trio.sleep(0.1)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: checker.run_writer(http, 200, stop=stop))
                nursery.start_soon(watch_away)
                cli = await trio.run_process(
                    [sys.executable, "-m", "torua", "rolling-restart", "--coordinator", up.url],
                    env={**group.env, "TORUA_TOKEN": token},
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
                stop.set()
            output = cli.stdout.decode()
            assert cli.returncode == 0, cli.stderr.decode()
            assert "rolling restart done: n1, n2, n3" in output
            after = _node_pids(up.pid)
            assert sorted(after) == ["n1", "n2", "n3"]
            assert all(after[n] != before[n] for n in before), "a node was not restarted"
            assert most_away == 1, f"{most_away} nodes were away at once"
            assert await green(http)
            assert await checker.lost(http) == []
            print("\nrolling restart timeline (seconds, cluster state, nodes away):")
            for moment in timeline:
                print(f"  {moment[0]:6.1f}  {moment[1]:<6}  {moment[2]}")
            print(f"{_done(checker)} writes acknowledged, {checker.failures} failed")
        await stop_up(up)


@pytest.mark.parametrize(
    ("extra", "status", "says"),
    [
        (["--command", "systemctl restart torua"], 2, "--command must contain {node}"),
        ([], 1, "no `up` cluster found"),
    ],
)
async def test_rolling_restart_usage_errors_are_one_line(
    extra: list[str], status: int, says: str
) -> None:
    url = f"http://127.0.0.1:{free_port_run(1)}"
    cli = await trio.run_process(
        [sys.executable, "-m", "torua", "rolling-restart", "--coordinator", url, *extra],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = cli.stderr.decode().strip().splitlines()
    assert cli.returncode == status and len(lines) == 1 and says in lines[0], lines
