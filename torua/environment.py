"""Build process settings from parsed flags and the environment.

The one place where flag-over-env-over-default is applied, so every process
kind resolves a setting the same way and names the same variable in errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from torua.config import (
    DEFAULT_SERVER,
    CoordinatorSettings,
    HealthSettings,
    NodeSettings,
    normalize_url,
    parse_bool,
    parse_disk_limit,
    parse_duration,
    parse_int,
    parse_listen,
    pick,
)
from torua.errors import ConfigError
from torua.limits import DEFAULT_MAX_VALUE

__all__ = ["add_coordinator_flags", "add_node_flags", "coordinator_settings", "node_settings"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--capacity", help="max shard copies per node (TORUA_NODE_CAPACITY)")
    parser.add_argument("--max-value", help="max value size in bytes (TORUA_MAX_VALUE)")
    parser.add_argument("--data-dir", help="data directory (TORUA_DATA_DIR)")
    parser.add_argument(
        "--memory",
        action="store_true",
        default=None,
        help="keep everything in memory (TORUA_MEMORY=1)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback listen address without TORUA_TOKEN",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING (TORUA_LOG_LEVEL)")
    parser.add_argument("--server", help="HTTP server: native or hypercorn (TORUA_SERVER)")
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log one line per HTTP request (TORUA_ACCESS_LOG=1)",
    )


def add_coordinator_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="host:port to serve on (COORDINATOR_ADDR)")
    parser.add_argument("--interval", help="probe interval, e.g. 5s (HEALTH_CHECK_INTERVAL)")
    parser.add_argument("--timeout", help="probe timeout, e.g. 2s (HEALTH_CHECK_TIMEOUT)")
    parser.add_argument("--failures", help="failures to unhealthy (HEALTH_CHECK_FAILURES)")
    parser.add_argument("--successes", help="passes to healthy (HEALTH_CHECK_SUCCESSES)")
    parser.add_argument("--probe-type", help="http or tcp (HEALTH_CHECK_TYPE)")
    parser.add_argument("--probe-path", help="path of http probes (HEALTH_CHECK_PATH)")
    parser.add_argument("--shards", help="shard count (TORUA_SHARDS)")
    parser.add_argument("--replicas", help="copies per shard (TORUA_REPLICATION_FACTOR)")
    _add_common(parser)


def add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", help="node id (NODE_ID)")
    parser.add_argument("--listen", help="host:port to serve on (NODE_LISTEN)")
    parser.add_argument("--addr", help="URL the coordinator calls (NODE_ADDR)")
    parser.add_argument("--coordinator", help="coordinator URL (COORDINATOR_ADDR)")
    _add_common(parser)


def _optional_int(value: str | None, setting: str) -> int | None:
    if value is None or value.strip().lower() in ("", "unlimited", "none"):
        return None
    return parse_int(value, setting=setting, minimum=0)


def _capacity(args: argparse.Namespace, env: Mapping[str, str]) -> int | None:
    return _optional_int(
        pick(args.capacity, env, "TORUA_NODE_CAPACITY", None), "TORUA_NODE_CAPACITY"
    )


def _shared(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """The settings every process kind reads the same way."""
    memory_flag = "1" if args.memory else None
    insecure_flag = "1" if args.insecure else None
    access_log_flag = "1" if args.access_log else None
    return {
        "max_value": parse_int(
            pick(args.max_value, env, "TORUA_MAX_VALUE", str(DEFAULT_MAX_VALUE)) or "",
            setting="TORUA_MAX_VALUE",
        ),
        "data_dir": pick(args.data_dir, env, "TORUA_DATA_DIR", "./.torua") or "./.torua",
        "memory": parse_bool(
            pick(memory_flag, env, "TORUA_MEMORY", "0") or "0", setting="TORUA_MEMORY"
        ),
        "token": env.get("TORUA_TOKEN") or None,
        "server": (pick(args.server, env, "TORUA_SERVER", DEFAULT_SERVER) or "").strip().lower(),
        "insecure": parse_bool(
            pick(insecure_flag, env, "TORUA_INSECURE", "0") or "0", setting="TORUA_INSECURE"
        ),
        "access_log": parse_bool(
            pick(access_log_flag, env, "TORUA_ACCESS_LOG", "0") or "0",
            setting="TORUA_ACCESS_LOG",
        ),
    }


def coordinator_settings(args: argparse.Namespace, env: Mapping[str, str]) -> CoordinatorSettings:
    listen = pick(args.listen, env, "COORDINATOR_ADDR", "127.0.0.1:8080")
    assert listen is not None
    host, port = parse_listen(listen, setting="COORDINATOR_ADDR")
    health = HealthSettings.from_env(
        env,
        interval=args.interval,
        timeout=args.timeout,
        failures=args.failures,
        successes=args.successes,
        kind=args.probe_type,
        path=args.probe_path,
    )
    return CoordinatorSettings(
        host=host,
        port=port,
        health=health,
        shards=parse_int(
            pick(args.shards, env, "TORUA_SHARDS", "16") or "", setting="TORUA_SHARDS"
        ),
        replication_factor=parse_int(
            pick(args.replicas, env, "TORUA_REPLICATION_FACTOR", "2") or "",
            setting="TORUA_REPLICATION_FACTOR",
        ),
        node_capacity=_capacity(args, env),
        etcd_endpoints=tuple(
            normalize_url(e.strip())
            for e in env.get("TORUA_ETCD_ENDPOINTS", "").split(",")
            if e.strip()
        ),
        leader_ttl=parse_duration(env.get("TORUA_LEADER_TTL", "10s"), setting="TORUA_LEADER_TTL"),
        replica_delay=parse_duration(
            env.get("TORUA_REPLICA_DELAY", "0s"), setting="TORUA_REPLICA_DELAY"
        ),
        etcd_prefix=env.get("TORUA_ETCD_PREFIX", "/torua/"),
        tombstone_grace=parse_duration(
            env.get("TORUA_TOMBSTONE_GRACE") or "24h", setting="TORUA_TOMBSTONE_GRACE"
        ),
        **_shared(args, env),
    )


def node_settings(args: argparse.Namespace, env: Mapping[str, str]) -> NodeSettings:
    node_id = pick(args.id, env, "NODE_ID", None)
    if node_id is None:
        raise ConfigError("NODE_ID is required for a node (or pass --id)")
    listen = pick(args.listen, env, "NODE_LISTEN", None)
    if listen is None:
        raise ConfigError("NODE_LISTEN is required for a node (or pass --listen host:port)")
    host, port = parse_listen(listen, setting="NODE_LISTEN")
    return NodeSettings(
        node_id=node_id,
        host=host,
        port=port,
        addr=pick(args.addr, env, "NODE_ADDR", None),
        coordinator=",".join(
            normalize_url(url.strip())
            for url in (
                pick(args.coordinator, env, "COORDINATOR_ADDR", "http://127.0.0.1:8080") or ""
            ).split(",")
        ),
        capacity=_capacity(args, env),
        disk_warn=parse_disk_limit(env.get("TORUA_DISK_WARN") or "85%", setting="TORUA_DISK_WARN"),
        disk_critical=parse_disk_limit(
            env.get("TORUA_DISK_CRITICAL") or "95%", setting="TORUA_DISK_CRITICAL"
        ),
        check_interval=parse_duration(
            env.get("TORUA_CHECK_INTERVAL") or "10s", setting="TORUA_CHECK_INTERVAL"
        ),
        read_cache_mb=parse_int(
            env.get("TORUA_READ_CACHE_MB") or "32", setting="TORUA_READ_CACHE_MB", minimum=0
        ),
        **_shared(args, env),
    )
