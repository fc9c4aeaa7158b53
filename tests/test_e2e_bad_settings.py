"""A bad setting stops ``up``, ``coordinator`` and ``node`` at once: exit 2, one line.

Every setting ``up`` or one of its children reads gets a bad value, from the
environment and from the flag where one exists. ``up`` must find it before a
child starts (or stop as soon as a child refuses it): a supervisor that waits
for a child that already exited looks like a hang to whoever typed the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

from torua.ha.local_etcd import free_port

pytestmark = pytest.mark.e2e

# (setting, bad value, flag of `coordinator`/`node` or None) for what the children read.
CHILD_SETTINGS: list[tuple[str, str, str | dict[str, str] | None]] = [
    ("HEALTH_CHECK_INTERVAL", "abc", "--interval"),
    ("HEALTH_CHECK_TIMEOUT", "abc", "--timeout"),
    ("HEALTH_CHECK_FAILURES", "x", "--failures"),
    ("HEALTH_CHECK_SUCCESSES", "0", "--successes"),
    ("HEALTH_CHECK_TYPE", "udp", "--probe-type"),
    ("HEALTH_CHECK_PATH", "health", "--probe-path"),
    ("TORUA_SHARDS", "0", "--shards"),
    ("TORUA_REPLICATION_FACTOR", "x", "--replicas"),
    ("TORUA_NODE_CAPACITY", "x", "--capacity"),
    ("TORUA_MAX_VALUE", "0", "--max-value"),
    ("TORUA_MEMORY", "maybe", None),
    ("TORUA_INSECURE", "maybe", None),
    ("TORUA_LEADER_TTL", "1s", None),
    ("TORUA_REPLICA_DELAY", "5", None),
    ("TORUA_ETCD_ENDPOINTS", "ftp://x", None),
    ("TORUA_LOG_LEVEL", "loud", "--log-level"),
    ("TORUA_TOMBSTONE_GRACE", "soon", None),
    ("TORUA_DISK_WARN", "full", None),
    ("TORUA_DISK_CRITICAL", "150%", None),
    ("TORUA_CHECK_INTERVAL", "0s", None),
    ("TORUA_READ_CACHE_MB", "-1", None),
    ("NODE_ADDR", "nowhere", "--addr"),
    ("NODE_ID", "bad id", "--id"),
    ("NODE_LISTEN", "no where", "--listen"),
    ("COORDINATOR_ADDR", "no where", {"coordinator": "--listen", "node": "--coordinator"}),
]
COORDINATOR_READS = {
    "HEALTH_CHECK_INTERVAL",
    "HEALTH_CHECK_TIMEOUT",
    "HEALTH_CHECK_FAILURES",
    "HEALTH_CHECK_SUCCESSES",
    "HEALTH_CHECK_TYPE",
    "HEALTH_CHECK_PATH",
    "TORUA_SHARDS",
    "TORUA_REPLICATION_FACTOR",
    "TORUA_NODE_CAPACITY",
    "TORUA_MAX_VALUE",
    "TORUA_MEMORY",
    "TORUA_INSECURE",
    "TORUA_LEADER_TTL",
    "TORUA_REPLICA_DELAY",
    "TORUA_ETCD_ENDPOINTS",
    "TORUA_LOG_LEVEL",
    "TORUA_TOMBSTONE_GRACE",
    "COORDINATOR_ADDR",
}
NODE_READS = {
    "TORUA_NODE_CAPACITY",
    "TORUA_MAX_VALUE",
    "TORUA_MEMORY",
    "TORUA_INSECURE",
    "TORUA_LOG_LEVEL",
    "TORUA_DISK_WARN",
    "TORUA_DISK_CRITICAL",
    "TORUA_CHECK_INTERVAL",
    "TORUA_READ_CACHE_MB",
    "NODE_ADDR",
    "NODE_ID",
    "NODE_LISTEN",
    "COORDINATOR_ADDR",
}
# What `up` passes as flags to its children wins over the environment, so these are
# not read there: up's own flags carry them. (TORUA_SHARDS and
# TORUA_REPLICATION_FACTOR are read by `up` itself when its flags are absent.)
SET_BY_UP = {"NODE_ID", "NODE_LISTEN", "COORDINATOR_ADDR"}

NODE_BASE = {"NODE_ID": "n1", "NODE_LISTEN": "127.0.0.1:0"}


def _cases() -> list:
    cases = []
    for name, value, flag in CHILD_SETTINGS:
        for kind, reads in (("coordinator", COORDINATOR_READS), ("node", NODE_READS)):
            if name not in reads:
                continue
            cases.append(pytest.param(kind, name, {name: value}, [], id=f"{kind}-env-{name}"))
            option = flag.get(kind) if isinstance(flag, dict) else flag
            if option is not None:
                cases.append(
                    pytest.param(kind, name, {}, [option, value], id=f"{kind}-flag-{option}")
                )
        if name not in SET_BY_UP:
            cases.append(pytest.param("up", name, {name: value}, [], id=f"up-env-{name}"))
    for flag, value in [
        ("--nodes", "x"),
        ("--nodes", "0"),
        ("--coordinators", "x"),
        ("--coordinators", "10"),
        ("--port", "x"),
        ("--shards", "x"),
        ("--shards", "70000"),
        ("--replicas", "x"),
        ("--replicas", "17"),
    ]:
        cases.append(pytest.param("up", flag, {}, [flag, value], id=f"up-flag-{flag}={value}"))
    return cases


def _argv(kind: str, setting: str, port: int, extra: list[str]) -> list[str]:
    if kind == "up":
        # up's --memory would be the children's --memory, which wins over TORUA_MEMORY.
        memory = [] if setting == "TORUA_MEMORY" else ["--memory"]
        return ["up", "--nodes", "1", *memory, "--port", str(port), *extra]
    return [kind, *extra]


def _ours(port: int) -> list[psutil.Process]:
    """Torua processes whose command line names our port: children of an `up`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "torua" in cmdline and any(f"127.0.0.1:{port}" in arg for arg in cmdline):
            found.append(process)
    return found


@pytest.mark.parametrize(("kind", "setting", "env", "flags"), _cases())
async def test_a_bad_setting_exits_2_at_once_with_one_line(
    kind: str, setting: str, env: dict[str, str], flags: list[str], tmp_path: Path
) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TORUA_", "HEALTH_"))}
    base.pop("NODE_ADDR", None)
    full_env = {**base, **(NODE_BASE if kind == "node" else {}), **env}
    argv = _argv(kind, setting, port, flags)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "torua", *argv],
        env=full_env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stderr = b""
    try:
        assert process.stderr is not None
        # Generous: a hang fails here instead of hanging the suite.
        with trio.move_on_after(60):
            async for chunk in process.stderr:
                stderr += chunk
            await process.wait()
    finally:
        left = _ours(port) if kind == "up" else []
        for child in left:
            child.kill()
        if process.returncode is None:
            process.kill()
        await process.wait()
        if process.returncode != 2 or left:
            # Whatever up started is reaped above; say so after.
            psutil.wait_procs(left, timeout=10)
    text = stderr.decode(errors="replace")
    assert process.returncode == 2, f"{argv} {env}: exit {process.returncode}; {text!r}"
    assert not left, f"children outlived up: {[p.pid for p in left]}"
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert setting in lines[0], text
    assert "Traceback" not in text


async def test_up_stops_at_once_when_a_child_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop behind the parent's own check: a child's exit 2 ends `up` with 2."""
    from torua import launcher
    from torua.up_settings import UpSettings

    monkeypatch.setattr(launcher, "check_children", lambda *args: None)
    settings = UpSettings(
        nodes=1,
        port=free_port(),
        memory=True,
        extra_env={"HEALTH_CHECK_INTERVAL": "abc"},
        ready_timeout=120,
    )
    with trio.fail_after(60):
        assert await launcher.run_up(settings) == 2
