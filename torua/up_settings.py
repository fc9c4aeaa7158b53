"""What ``python -m torua up`` runs, and the check that every child would accept it.

``up`` builds each child's command line here, then parses it exactly as the
child will (same flags, same environment) before starting anything: a bad
setting is then one line and exit 2 from ``up`` itself, instead of a child
that exits at once while ``up`` waits for it to answer.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

from torua.config import parse_int, parse_log_level
from torua.environment import (
    add_coordinator_flags,
    add_node_flags,
    coordinator_settings,
    node_settings,
)
from torua.errors import ConfigError

__all__ = [
    "UpSettings",
    "check_children",
    "children_env",
    "coordinator_argv",
    "node_argv",
    "up_settings_from",
]

# Stands in for the local etcd's URL, only known once it runs, while checking.
_ETCD_PLACEHOLDER = "http://127.0.0.1:2379"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpSettings:
    nodes: int = 3
    coordinators: int = 1
    port: int = 8080
    shards: int = 16
    replicas: int = 2
    data_dir: str = "./.torua"
    memory: bool = False
    access_log: bool = False  # passed on to every child as --access-log
    token: str | None = None
    ready_timeout: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 64:
            raise ConfigError(f"--nodes={self.nodes} must be between 1 and 64")
        if not 1 <= self.coordinators <= 9:
            raise ConfigError(f"--coordinators={self.coordinators} must be between 1 and 9")
        if not 1 <= self.port <= 65535 - self.nodes - self.coordinators:
            raise ConfigError(f"--port={self.port} leaves no room for {self.nodes} node ports")
        # The coordinator's own limits, named by up's flags rather than its variables.
        if not 1 <= self.shards <= 65536:
            raise ConfigError(f"--shards={self.shards} must be between 1 and 65536")
        if not 1 <= self.replicas <= 16:
            raise ConfigError(f"--replicas={self.replicas} must be between 1 and 16")

    def common_argv(self) -> list[str]:
        return (
            ["--data-dir", self.data_dir]
            + (["--memory"] if self.memory else [])
            + (["--access-log"] if self.access_log else [])
        )


def up_settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> UpSettings:
    """``up``'s settings from its flags, falling back on the variables its children read."""
    return UpSettings(
        nodes=parse_int(args.nodes, setting="--nodes"),
        coordinators=parse_int(args.coordinators, setting="--coordinators"),
        port=parse_int(args.port, setting="--port"),
        shards=_shards_or_replicas(args.shards, env, "TORUA_SHARDS", "--shards", 16, 65536),
        replicas=_shards_or_replicas(
            args.replicas, env, "TORUA_REPLICATION_FACTOR", "--replicas", 2, 16
        ),
        data_dir=args.data_dir or env.get("TORUA_DATA_DIR") or "./.torua",
        memory=args.memory,
        access_log=bool(getattr(args, "access_log", False)),
        token=env.get("TORUA_TOKEN") or None,
    )


def _shards_or_replicas(
    flag: str | None, env: Mapping[str, str], name: str, option: str, default: int, top: int
) -> int:
    """From ``option`` or, without it, from ``name`` (which the coordinator reads, but
    ``up`` passes the count on as a flag, which would otherwise hide the variable)."""
    if flag is not None:
        return parse_int(flag, setting=option)
    text = env.get(name)
    if text is None or not text.strip():
        return default
    value = parse_int(text, setting=name)
    if not 1 <= value <= top:
        raise ConfigError(f"{name}={text!r} must be between 1 and {top}")
    return value


def children_env(settings: UpSettings, environ: Mapping[str, str], *, token: str) -> dict[str, str]:
    """The environment every child starts with.

    ``NODE_ADDR`` is refused: it is one node's address, and ``up`` would hand it
    to every node it starts, so that all of them claimed the same one.
    """
    if environ.get("NODE_ADDR"):
        raise ConfigError(
            f"NODE_ADDR={environ['NODE_ADDR']!r} names one node's address, but up starts "
            "several nodes on loopback ports of its own: unset NODE_ADDR"
        )
    env = {**environ, **settings.extra_env, "TORUA_TOKEN": token}
    env.setdefault("TORUA_LOG_LEVEL", "WARNING")
    return env


def coordinator_argv(settings: UpSettings, url: str) -> list[str]:
    return [
        "coordinator",
        "--listen",
        url.removeprefix("http://"),
        "--shards",
        str(settings.shards),
        "--replicas",
        str(settings.replicas),
        *settings.common_argv(),
    ]


def node_argv(settings: UpSettings, index: int, port: int, coordinators: list[str]) -> list[str]:
    return [
        "node",
        "--id",
        f"n{index}",
        "--listen",
        f"127.0.0.1:{port}",
        "--coordinator",
        ",".join(coordinators),
        *settings.common_argv(),
    ]


def check_children(settings: UpSettings, env: Mapping[str, str], coordinators: list[str]) -> None:
    """Raise the ConfigError a coordinator or node child would exit 2 with."""
    child_env = dict(env)
    if settings.coordinators > 1:
        child_env["TORUA_ETCD_ENDPOINTS"] = _ETCD_PLACEHOLDER
    checks = [
        (add_coordinator_flags, coordinator_settings, coordinator_argv(settings, coordinators[0])),
        (add_node_flags, node_settings, node_argv(settings, 1, 1, coordinators)),
    ]
    for add_flags, build, argv in checks:
        parser = argparse.ArgumentParser()
        add_flags(parser)
        args = parser.parse_args(argv[1:])
        build(args, child_env)
        parse_log_level(args.log_level or child_env.get("TORUA_LOG_LEVEL"))
