"""The client commands run for real: ``python -m torua ...`` as a
subprocess against a coordinator and nodes running as real processes.

One cluster (coordinator + n1..n3, 8 shards, R=2) serves the whole module;
tests that change it (maintenance, evacuate, drain, an extra node) put it
back as they found it, or add nodes of their own. Every process started here
is stopped and reaped by pid in the fixture's ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from torua.cli.common import open_client
from torua.cli.events import SseEvent, describe, parse_sse

pytestmark = pytest.mark.e2e

ENV = {
    "HEALTH_CHECK_INTERVAL": "500ms",
    "HEALTH_CHECK_TIMEOUT": "400ms",
    "TORUA_MEMORY": "1",
    "TORUA_LOG_LEVEL": "ERROR",
}


class Cluster:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.url = ""

    def start(self, name: str, argv: list[str]) -> str:
        env = {**os.environ, **ENV}
        env.pop("TORUA_TOKEN", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "torua", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.procs[name] = process
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("READY "):
                return line.split()[1]
        raise AssertionError(f"{name} exited with {process.wait()} before READY")

    def node(self, node_id: str) -> str:
        return self.start(
            node_id, ["node", "--id", node_id, "--listen", "127.0.0.1:0", "--coordinator", self.url]
        )

    def stop(self, name: str) -> None:
        """SIGINT: a node stops without draining; then reap it by pid."""
        process = self.procs.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert (
            not psutil.pid_exists(process.pid)
            or psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def nodes(self) -> dict[str, dict]:
        with self.http() as http:
            return {n["id"]: n for n in http.get("/nodes").json()["nodes"]}

    def wait_settled(self, healthy: int, within: float = 20.0) -> None:
        """``healthy`` nodes healthy and every shard active (no copy still moving)."""
        deadline = time.monotonic() + within
        with self.http() as http:
            while time.monotonic() < deadline:
                nodes = http.get("/nodes").json()["nodes"]
                shards = http.get("/shards").json()["shards"]
                if sum(n["status"] == "healthy" for n in nodes) >= healthy and all(
                    s["state"] == "active" for s in shards
                ):
                    return
                time.sleep(0.1)
        raise AssertionError(f"cluster not settled with {healthy} healthy nodes")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.url = c.start(
            "coordinator",
            ["coordinator", "--listen", "127.0.0.1:0", "--shards", "8", "--replicas", "2"],
        )
        for node_id in ("n1", "n2", "n3"):
            c.node(node_id)
        c.wait_settled(3)
        with c.http() as http:
            deadline = time.monotonic() + 20
            while http.get("/cluster/info").json()["cluster_state"] != "green":
                assert time.monotonic() < deadline, "cluster not green"
                time.sleep(0.1)
        yield c
    finally:
        for name in reversed(list(c.procs)):
            c.stop(name)


def torua(
    cluster: Cluster | None, *argv: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ}
    env.pop("TORUA_TOKEN", None)
    env.pop("TORUA_COORDINATOR", None)
    if cluster is not None:
        env["TORUA_COORDINATOR"] = cluster.url
    return subprocess.run(
        [sys.executable, "-m", "torua", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("torua: "), err
    return err


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


# -- reading the cluster ------------------------------------------------------------------


def test_status_table(cluster: Cluster) -> None:
    out = ok(torua(cluster, "status"))
    assert "Torua cluster" in out and "green" in out
    assert "3/3 healthy" in out and "8/8 assigned" in out and "R=2" in out


def test_nodes_table(cluster: Cluster) -> None:
    out = ok(torua(cluster, "nodes"))
    for node_id in ("n1", "n2", "n3"):
        row = next(line for line in out.splitlines() if f" {node_id} " in line)
        assert "healthy" in row and "active" in row and "http://127.0.0.1:" in row
    assert "last check" in out


def test_shards_table(cluster: Cluster) -> None:
    out = ok(torua(cluster, "shards"))
    assert "R=2" in out and out.count("active") >= 8 and "(2/2)" in out


def test_json_outputs(cluster: Cluster) -> None:
    info = json.loads(ok(torua(cluster, "status", "--json")))
    assert info["cluster_state"] == "green" and info["total_nodes"] == 3
    nodes = json.loads(ok(torua(cluster, "nodes", "--json")))["nodes"]
    assert {n["id"] for n in nodes} == {"n1", "n2", "n3"}
    assert all({"status", "mode", "shards", "primary_shards"} <= n.keys() for n in nodes)
    shards = json.loads(ok(torua(cluster, "shards", "--json", "--coordinator", cluster.url)))
    assert shards["num_shards"] == 8 and len(shards["shards"]) == 8


# -- data -----------------------------------------------------------------------------------


def test_put_get_binary_via_stdin(cluster: Cluster) -> None:
    value = bytes(range(256)) * 8 + b"\r\n\x00"
    key = "bin/é key:@"
    assert torua(cluster, "put", key, "-", stdin=value).returncode == 0
    result = torua(cluster, "get", key)
    assert result.returncode == 0 and result.stdout == value  # exactly, nothing added
    as_json = json.loads(ok(torua(cluster, "get", key, "--json")))
    assert as_json["size"] == len(value) and "value_base64" in as_json


def test_put_get_delete_text(cluster: Cluster) -> None:
    ok(torua(cluster, "put", "greeting", "hello world"))
    assert torua(cluster, "get", "greeting").stdout == b"hello world"  # no newline when piped
    ok(torua(cluster, "delete", "greeting"))
    assert torua(cluster, "get", "greeting").returncode == 1


def test_get_missing_key_fails_with_one_line(cluster: Cluster) -> None:
    result = torua(cluster, "get", "no-such-key")
    assert result.returncode == 1 and result.stdout == b""
    assert "no-such-key" in one_line_error(result)


@pytest.mark.parametrize(
    "argv",
    [
        ["get"],
        ["put", "k"],
        ["frobnicate"],
        ["maintenance", "maybe", "n1"],
        ["maintenance", "on"],
        ["watch", "--count", "0"],
        ["get", ""],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    result = torua(None, *argv, "--coordinator", "http://127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr


def test_unreachable_coordinator_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    for argv in (["status"], ["get", "k"], ["watch"], ["drain", "n1"]):
        result = torua(None, *argv, "--coordinator", f"http://127.0.0.1:{port}")
        assert result.returncode == 1
        assert "cannot reach the coordinator" in one_line_error(result)


def test_several_coordinator_urls_fail_over_to_one_that_answers(cluster: Cluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
    urls = f"{dead},{cluster.url}"
    ok(torua(None, "put", "failover", "yes", "--coordinator", urls))
    assert torua(None, "get", "failover", "--coordinator", urls).stdout == b"yes"
    assert json.loads(ok(torua(None, "status", "--json", "--coordinator", urls)))["total_nodes"]


def test_unknown_node_fails_with_one_line(cluster: Cluster) -> None:
    for argv in (["maintenance", "on", "ghost"], ["evacuate", "ghost"], ["drain", "ghost"]):
        result = torua(cluster, *argv)
        assert result.returncode == 1 and "ghost" in one_line_error(result)


# -- events -----------------------------------------------------------------------------------


def test_watch_sees_hello_then_a_node_joining(cluster: Cluster) -> None:
    with cluster.http() as http, http.stream("GET", "/events") as probe:
        if probe.status_code == 404:
            pytest.skip("GET /events is not served by this coordinator yet")
    env = {**os.environ, "TORUA_COORDINATOR": cluster.url}
    env.pop("TORUA_TOKEN", None)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "torua", "watch", "--count", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert watcher.stdout is not None
        hello = json.loads(watcher.stdout.readline())  # the snapshot comes at once
        assert hello["type"] == "hello"
        assert {n["id"] for n in hello["nodes"]} >= {"n1", "n2", "n3"}
        cluster.node("n4")
        rest, err = watcher.communicate(timeout=20)
        assert watcher.returncode == 0, err
        joined = json.loads(rest)
        assert joined["type"] == "node_joined" and joined["node_id"] == "n4"
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    cluster.wait_settled(4)


def test_watch_for_people_and_ctrl_c(cluster: Cluster) -> None:
    env = {**os.environ, "TORUA_COORDINATOR": cluster.url}
    env.pop("TORUA_TOKEN", None)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "torua", "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert watcher.stdout is not None
    line = watcher.stdout.readline()
    assert " hello " in line and "nodes healthy" in line
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=10)
    assert watcher.returncode == 0 and "Traceback" not in err


# -- operations -------------------------------------------------------------------------------


def test_rebalance(cluster: Cluster) -> None:
    body = json.loads(ok(torua(cluster, "rebalance", "--json")))
    assert isinstance(body["moves"], list)
    assert "copy moves" in ok(torua(cluster, "rebalance"))
    copies = [len(n["shards"]) for n in cluster.nodes().values() if n["mode"] == "active"]
    assert max(copies) - min(copies) <= 1


def test_rebalance_by_load(cluster: Cluster) -> None:
    deadline = time.monotonic() + 15
    while True:  # the coordinator needs two readings of the counters for a rate
        result = torua(cluster, "rebalance", "--by", "load", "--json")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        assert b"not measured yet" in result.stderr, result.stderr
        time.sleep(0.5)
    body = json.loads(ok(result))
    assert isinstance(body["moves"], list) and body["done"] is True
    assert all(m["reason"] == "load" for m in body["moves"] if m["reason"] != "promote")
    assert "req/s" in ok(torua(cluster, "shards"))
    bad = torua(cluster, "rebalance", "--by", "speed")
    assert bad.returncode == 2 and b"invalid choice" in bad.stderr


def test_maintenance_on_then_off(cluster: Cluster) -> None:
    out = ok(torua(cluster, "maintenance", "on", "n1"))
    assert "n1" in out and "maintenance" in out
    assert cluster.nodes()["n1"]["mode"] == "maintenance"
    body = json.loads(ok(torua(cluster, "maintenance", "off", "n1", "--json")))
    assert body["nodes"] == {"n1": "active"}
    assert cluster.nodes()["n1"]["mode"] == "active"
    cluster.wait_settled(3)


def test_evacuate_to_done_and_data_stays_readable(cluster: Cluster) -> None:
    values = {f"evac-{i}": f"value {i}".encode() for i in range(40)}
    with cluster.http() as http:
        for key, value in values.items():
            assert http.put(f"/data/{key}", content=value).status_code == 204
    assert cluster.nodes()["n3"]["shards"], "n3 should hold copies before the evacuation"
    result = torua(cluster, "evacuate", "n3")
    out = ok(result)
    assert "evacuated n3" in out and "moved" in out
    n3 = cluster.nodes()["n3"]
    assert n3["mode"] == "evacuating" and n3["shards"] == []
    with cluster.http() as http:
        for key, value in values.items():
            assert http.get(f"/data/{key}").content == value
    assert torua(cluster, "get", "evac-7").stdout == b"value 7"
    ok(torua(cluster, "maintenance", "off", "n3"))  # back to active, for the tests after
    ok(torua(cluster, "rebalance"))
    cluster.wait_settled(3)


def test_drain_moves_every_copy(cluster: Cluster) -> None:
    cluster.node("d1")
    cluster.wait_settled(4)
    ok(torua(cluster, "rebalance"))
    held = len(cluster.nodes()["d1"]["shards"])
    assert held > 0, "d1 should hold copies after the rebalance"
    out = ok(torua(cluster, "drain", "d1"))
    assert f"moved {held} cop" in out
    assert cluster.nodes()["d1"]["shards"] == []
    cluster.stop("d1")
    with cluster.http() as http:
        assert http.delete("/nodes/d1").status_code in (200, 204)


# -- pieces, in process ---------------------------------------------------------------------


def test_token_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("TORUA_TOKEN", "s3cret")
    monkeypatch.setenv("TORUA_COORDINATOR", "http://10.0.0.1:9000/")
    with open_client(argparse.Namespace(coordinator=None)) as client:
        assert client.headers["Authorization"] == "Bearer s3cret"
        assert str(client.base_url).rstrip("/") == "http://10.0.0.1:9000"
    with open_client(argparse.Namespace(coordinator="127.0.0.1:1")) as client:
        assert str(client.base_url).rstrip("/") == "http://127.0.0.1:1"


def test_sse_parsing() -> None:
    lines = [
        "retry: 2000",
        "",
        "id: 0",
        "event: hello",
        'data: {"cluster": {}}',
        "",
        ": keepalive",
        "",
        "id: 1",
        "event: node_joined",
        'data: {"type": "node_joined", "node_id": "n9", "addr": "http://x"}',
        "",
        "data: line one",
        "data: line two",
        "",
    ]
    events = list(parse_sse(lines))
    assert events == [
        SseEvent("0", "hello", '{"cluster": {}}'),
        SseEvent(
            "1", "node_joined", '{"type": "node_joined", "node_id": "n9", "addr": "http://x"}'
        ),
        SseEvent("1", "message", "line one\nline two"),
    ]
    assert events[0].payload()["type"] == "hello"
    assert describe(events[1].payload()) == "n9 at http://x"
    assert events[2].payload() == {"type": "message", "data": "line one\nline two"}
