"""Settings: Go durations, flag over env over default, one-line errors with exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from torua.config import HealthSettings, format_duration, parse_duration
from torua.environment import (
    add_coordinator_flags,
    add_node_flags,
    coordinator_settings,
    node_settings,
)
from torua.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        ("0", 0.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5", "2 s", "-1s", "1x", "", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text, setting="HEALTH_CHECK_INTERVAL")


def test_format_duration_round_trips() -> None:
    for seconds in (0.5, 2.0, 90.0, 3600.0, 5.0):
        assert parse_duration(format_duration(seconds)) == seconds


def _coordinator(argv: list[str], env: dict[str, str]):
    parser = argparse.ArgumentParser()
    add_coordinator_flags(parser)
    return coordinator_settings(parser.parse_args(argv), env)


def test_flags_beat_env_beat_defaults() -> None:
    assert _coordinator([], {}).health.interval == 5.0
    assert _coordinator([], {"HEALTH_CHECK_INTERVAL": "10s"}).health.interval == 10.0
    flagged = _coordinator(["--interval", "3s"], {"HEALTH_CHECK_INTERVAL": "10s"})
    assert flagged.health.interval == 3.0
    settings = _coordinator([], {"COORDINATOR_ADDR": ":9090", "TORUA_TOKEN": "t"})
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)


def test_the_http_server_is_native_unless_hypercorn_is_asked_for() -> None:
    assert _coordinator([], {}).server == "native"
    assert _coordinator([], {"TORUA_SERVER": "Hypercorn"}).server == "hypercorn"
    assert _coordinator(["--server", "native"], {"TORUA_SERVER": "hypercorn"}).server == "native"
    parser = argparse.ArgumentParser()
    add_node_flags(parser)
    args = parser.parse_args(["--server", "hypercorn"])
    node = node_settings(args, {"NODE_ID": "n1", "NODE_LISTEN": "127.0.0.1:1"})
    assert node.server == "hypercorn"
    with pytest.raises(ConfigError, match="TORUA_SERVER"):
        _coordinator([], {"TORUA_SERVER": "uvicorn"})


def test_short_interval_derives_its_timeout() -> None:
    health = _coordinator([], {"HEALTH_CHECK_INTERVAL": "2s"}).health
    assert (health.interval, health.timeout) == (2.0, 1.0)


@pytest.mark.parametrize(
    "env",
    [
        {"HEALTH_CHECK_INTERVAL": "abc"},
        {"HEALTH_CHECK_INTERVAL": "2s", "HEALTH_CHECK_TIMEOUT": "2s"},
        {"HEALTH_CHECK_FAILURES": "0"},
        {"HEALTH_CHECK_SUCCESSES": "zero"},
        {"HEALTH_CHECK_TYPE": "udp"},
        {"TORUA_SHARDS": "0"},
        {"TORUA_REPLICATION_FACTOR": "-1"},
        {"TORUA_NODE_CAPACITY": "-3"},
        {"COORDINATOR_ADDR": "nowhere"},
        {"COORDINATOR_ADDR": "0.0.0.0:8080"},
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_LEADER_TTL": "1s"},
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_LEADER_TTL": "soon"},
        {"TORUA_ETCD_ENDPOINTS": "not a url"},
        # Two clusters on one etcd are kept apart by the prefix alone.
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_ETCD_PREFIX": ""},
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_ETCD_PREFIX": "/"},
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_ETCD_PREFIX": "/my cluster/"},
        {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_ETCD_PREFIX": "/a\n/"},
        # HA coordinators are reached at their URL: "all interfaces" is not one.
        {
            "TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379",
            "COORDINATOR_ADDR": ":8080",
            "TORUA_TOKEN": "t",
        },
    ],
)
def test_bad_coordinator_settings(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        _coordinator([], env)


def test_etcd_prefix_is_kept_as_given() -> None:
    env = {"TORUA_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TORUA_ETCD_PREFIX": "/prod-1/"}
    assert _coordinator([], env).etcd_prefix == "/prod-1/"


def test_bad_node_id_is_refused() -> None:
    parser = argparse.ArgumentParser()
    add_node_flags(parser)
    with pytest.raises(ConfigError, match="NODE_ID"):
        node_settings(parser.parse_args([]), {"NODE_ID": "bad id!", "NODE_LISTEN": "127.0.0.1:1"})


def test_health_settings_reject_timeout_not_shorter_than_interval() -> None:
    with pytest.raises(ConfigError, match="HEALTH_CHECK_TIMEOUT"):
        HealthSettings(interval=2.0, timeout=2.0)


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["coordinator"], {"HEALTH_CHECK_INTERVAL": "abc"}, "HEALTH_CHECK_INTERVAL"),
        (["coordinator"], {"COORDINATOR_ADDR": "0.0.0.0:0"}, "TORUA_TOKEN"),
        (["node"], {"NODE_ID": "bad id", "NODE_LISTEN": "127.0.0.1:0"}, "NODE_ID"),
        (["node"], {"NODE_LISTEN": "127.0.0.1:0"}, "NODE_ID"),
    ],
)
def test_process_exits_2_with_one_line(argv: list[str], env: dict[str, str], names: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "torua", *argv],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert "Traceback" not in result.stderr
