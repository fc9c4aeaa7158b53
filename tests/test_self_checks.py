"""Node self-checks: disk watermarks, the store probe, loop lag, and what the
coordinator makes of them (probe outcome, /nodes, placement)."""

from __future__ import annotations

import argparse

import pytest
import trio
from rich.console import Console

from torua.cli.render import nodes_table
from torua.cluster.placement import reconcile
from torua.config import CoordinatorSettings, DiskLimit, NodeSettings, parse_disk_limit
from torua.coordinator.state.node_checks import NodeChecks
from torua.coordinator.state.state import ClusterState
from torua.environment import add_node_flags, node_settings
from torua.errors import ConfigError
from torua.node.api import create_node_app
from torua.node.checks import PROBE_SHARD, DiskUsage, SelfChecks
from torua.node.state import NodeRuntime
from torua.node.store import MemoryStore

GIB = 1024**3


class FakeDisk:
    def __init__(self, free: int, total: int = 100 * GIB) -> None:
        self.free, self.total = free, total

    def __call__(self, path: str) -> DiskUsage:
        return DiskUsage(self.total, self.total - self.free, self.free)


def checks_for(disk: FakeDisk, store: MemoryStore | None = None, **limits: str) -> SelfChecks:
    return SelfChecks(
        store or MemoryStore(),
        data_dir="/data",
        warn=parse_disk_limit(limits.get("warn", "85%"), setting="TORUA_DISK_WARN"),
        critical=parse_disk_limit(limits.get("critical", "95%"), setting="TORUA_DISK_CRITICAL"),
        interval=10.0,
        disk_usage=disk,
    )


def states(checks: SelfChecks) -> dict[str, str]:
    return {r.name: r.state for r in checks.results()}


async def test_disk_states_follow_the_watermarks_as_the_disk_fills() -> None:
    disk = FakeDisk(free=50 * GIB)
    checks = checks_for(disk)
    await checks.check_all()
    assert states(checks) == {"disk": "passing", "store": "passing", "event_loop": "passing"}
    disk.free = 10 * GIB  # 90 % used
    await checks.check_all()
    assert states(checks)["disk"] == "warning"
    assert checks.critical() == []
    disk.free = 4 * GIB  # 96 % used
    await checks.check_all()
    assert [r.name for r in checks.critical()] == ["disk"]
    assert "96.0% used" in checks.critical()[0].output


async def test_space_reserved_for_root_counts_as_used() -> None:
    def reserved(path: str) -> DiskUsage:
        return DiskUsage(total=100 * GIB, used=50 * GIB, free=40 * GIB)  # 10 GiB reserved

    checks = checks_for(FakeDisk(0), warn="55%")
    checks._disk_usage = reserved
    await checks.check_all()
    [disk] = [r for r in checks.results() if r.name == "disk"]
    assert disk.state == "warning" and "(60.0% used)" in disk.output


async def test_free_size_watermarks() -> None:
    disk = FakeDisk(free=8 * GIB)
    checks = checks_for(disk, warn="10gb", critical="1gb")
    await checks.check_all()
    assert states(checks)["disk"] == "warning"
    disk.free = GIB // 2
    await checks.check_all()
    assert states(checks)["disk"] == "critical"


class BrokenStore(MemoryStore):
    async def put(self, shard: int, key: str, value: bytes | None, version: int) -> bool:
        raise OSError(28, "No space left on device")


async def test_a_store_that_cannot_write_is_critical_and_user_shards_stay_clean() -> None:
    store = MemoryStore()
    checks = checks_for(FakeDisk(free=50 * GIB), store)
    await checks.check_all()
    await checks.check_all()
    assert (await store.keys(0)) == [] and (await store.export(0)) == []
    assert len(await store.export(PROBE_SHARD)) == 1  # one record, rewritten in place
    broken = checks_for(FakeDisk(free=50 * GIB), BrokenStore())
    await broken.check_all()
    [critical] = broken.critical()
    assert critical.name == "store" and "No space left" in critical.output


async def test_a_late_loop_warns(autojump_clock: trio.testing.MockClock) -> None:
    checks = checks_for(FakeDisk(free=50 * GIB))
    async with trio.open_nursery() as nursery:
        await nursery.start(checks.run)
        autojump_clock.autojump_threshold = 1e9  # stop auto-jumping: time stands still
        autojump_clock.jump(11.0)  # the check due at 10 s runs 1 s late
        await trio.testing.wait_all_tasks_blocked()
        assert states(checks)["event_loop"] == "warning"
        autojump_clock.autojump_threshold = 0
        await trio.sleep(10.0)  # on time again
        assert states(checks)["event_loop"] == "passing"
        nursery.cancel_scope.cancel()


async def test_health_is_503_only_while_a_check_is_critical() -> None:
    disk = FakeDisk(free=10 * GIB)
    store = MemoryStore()
    checks = checks_for(disk, store)
    await checks.check_all()
    client = create_node_app(
        NodeRuntime(node_id="n1"), store, max_value=1024, checks=checks
    ).test_client()
    response = await client.get("/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok" and body["node_id"] == "n1"
    assert {c["name"]: c["state"] for c in body["checks"]}["disk"] == "warning"
    disk.free = GIB
    await checks.check_all()
    response = await client.get("/health")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "critical"
    assert any(c["name"] == "disk" and c["state"] == "critical" for c in body["checks"])


def test_disk_limits_parse_and_bad_ones_stop_the_start() -> None:
    assert parse_disk_limit("90%", setting="X") == DiskLimit(used_percent=90.0)
    assert parse_disk_limit("10GB", setting="X") == DiskLimit(free_bytes=10 * GIB)
    assert parse_disk_limit("512", setting="X") == DiskLimit(free_bytes=512)
    for bad in ("", "150%", "0%", "lots", "-1gb", "5 furlongs"):
        with pytest.raises(ConfigError, match="X="):
            parse_disk_limit(bad, setting="X")
    with pytest.raises(ConfigError, match="TORUA_DISK_CRITICAL"):
        NodeSettings(
            node_id="n1",
            disk_warn=DiskLimit(used_percent=95.0),
            disk_critical=DiskLimit(used_percent=90.0),
        )
    parser = argparse.ArgumentParser()
    add_node_flags(parser)
    args = parser.parse_args(["--id", "n1", "--listen", "127.0.0.1:0"])
    with pytest.raises(ConfigError, match="TORUA_DISK_WARN='full'"):
        node_settings(args, {"TORUA_DISK_WARN": "full"})
    with pytest.raises(ConfigError, match="TORUA_CHECK_INTERVAL"):
        node_settings(args, {"TORUA_CHECK_INTERVAL": "0s"})
    settings = node_settings(args, {"TORUA_DISK_WARN": "20gb", "TORUA_DISK_CRITICAL": "2gb"})
    assert settings.disk_critical == DiskLimit(free_bytes=2 * GIB)


def _health_body(disk_state: str) -> bytes:
    return (
        b'{"status": "ok", "checks": [{"name": "disk", "state": "%s", "output": "x"}, '
        b'{"name": "store", "state": "passing", "output": "ok"}]}' % disk_state.encode()
    )


def test_a_node_whose_disk_warns_keeps_its_copies_and_takes_no_new_ones() -> None:
    state = ClusterState(CoordinatorSettings(shards=8, replication_factor=2))
    for node in ("n1", "n2", "n3"):
        state.registry.register(node, f"http://{node}", None)
        state.health_status[node] = "healthy"
    reconcile(state.table, state.node_states())
    before = state.table.copies_on("n3")
    assert before
    state.checks.note("http://n3", _health_body("warning"))
    state.health_status["n1"] = "unhealthy"
    reconcile(state.table, state.node_states())
    assert state.table.copies_on("n3") == before, "n3 took a copy or lost one"
    assert not state.table.copies_on("n1")
    # n2 took every copy it could; shards that had none on n3 stay short rather than go there.
    assert len(state.table.copies_on("n2")) == 8
    assert all(len(s.copies) == (2 if "n3" in s.copies else 1) for s in state.table.shards)
    state.checks.note("http://n3", _health_body("passing"))
    assert not state.checks.disk_warns("http://n3")


def test_checks_from_a_health_answer() -> None:
    checks = NodeChecks()
    cleared: list[str] = []
    checks.on_disk_clear = cleared.append
    checks.note("a", _health_body("passing"))
    checks.note("a", _health_body("warning"))
    checks.note("a", _health_body("warning"))
    assert cleared == []
    checks.note("a", _health_body("passing"))
    assert cleared == ["a"]  # once, on the change: placement may use the node again
    assert checks.note("a", b"not json") == []
    assert checks.note("a", b'{"status": "ok"}') == []
    found = checks.note("a", _health_body("critical"))
    assert [c["state"] for c in found] == ["critical", "passing"]
    assert checks.disk_warns("a") and checks.of("a") == found
    checks.forget("a")
    assert checks.of("a") == []


def test_the_nodes_table_shows_checks_that_are_not_passing() -> None:
    node = {
        "id": "n3",
        "addr": "http://n3",
        "status": "healthy",
        "mode": "active",
        "shards": [],
        "primary_shards": [],
        "last_health_check": None,
        "checks": [
            {"name": "disk", "state": "warning", "output": "90% used"},
            {"name": "store", "state": "passing", "output": "ok"},
        ],
    }
    console = Console(record=True, width=120)
    console.print(nodes_table([node]))
    text = console.export_text()
    assert "disk warning" in text and "store" not in text
