"""What `up` makes of its flags and environment, before it starts any process."""

from __future__ import annotations

import argparse

import pytest

from torua.errors import ConfigError
from torua.up_settings import children_env, up_settings_from


def _args(*argv: str) -> argparse.Namespace:
    from torua.__main__ import build_parser

    return build_parser().parse_args(["up", *argv])


def test_shards_and_replicas_come_from_the_environment_when_no_flag_names_them() -> None:
    env = {"TORUA_SHARDS": "8", "TORUA_REPLICATION_FACTOR": "3"}
    settings = up_settings_from(_args(), env)
    assert (settings.shards, settings.replicas) == (8, 3)


def test_a_flag_wins_over_the_environment() -> None:
    env = {"TORUA_SHARDS": "8", "TORUA_REPLICATION_FACTOR": "3"}
    settings = up_settings_from(_args("--shards", "4", "--replicas", "1"), env)
    assert (settings.shards, settings.replicas) == (4, 1)


def test_defaults_without_flag_or_environment() -> None:
    settings = up_settings_from(_args(), {})
    assert (settings.shards, settings.replicas, settings.nodes) == (16, 2, 3)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TORUA_SHARDS": "0"}, "TORUA_SHARDS"),
        ({"TORUA_SHARDS": "70000"}, "TORUA_SHARDS"),
        ({"TORUA_REPLICATION_FACTOR": "x"}, "TORUA_REPLICATION_FACTOR"),
        ({"TORUA_REPLICATION_FACTOR": "17"}, "TORUA_REPLICATION_FACTOR"),
    ],
)
def test_a_bad_environment_value_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        up_settings_from(_args(), env)


def test_node_addr_is_refused_since_every_node_would_claim_it() -> None:
    settings = up_settings_from(_args(), {})
    with pytest.raises(ConfigError, match="NODE_ADDR"):
        children_env(settings, {"NODE_ADDR": "http://127.0.0.1:9999"}, token="t")


def test_children_env_carries_the_token_and_a_quiet_log_level() -> None:
    settings = up_settings_from(_args(), {})
    env = children_env(settings, {"PATH": "/bin"}, token="t")
    assert env["TORUA_TOKEN"] == "t" and env["TORUA_LOG_LEVEL"] == "WARNING"
    assert env["PATH"] == "/bin"
