"""Settings for every Torua process, as frozen, validated value objects.

Each process kind gets one dataclass, validated in ``__post_init__`` so a bad
value can never reach a running service. ``__main__`` is the only place that
reads flags and the environment (:func:`pick` merges them: flag over env over
default); library users build these objects directly.

Every validation failure is a :class:`~torua.errors.ConfigError` whose text is
the one line the process prints before exiting with status 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from torua.disk_limit import DiskLimit, parse_disk_limit
from torua.errors import ConfigError
from torua.limits import DEFAULT_MAX_VALUE
from torua.setting_values import (
    LOG_LEVELS,
    format_duration,
    is_loopback_host,
    normalize_url,
    parse_bool,
    parse_duration,
    parse_int,
    parse_listen,
    parse_log_level,
)

__all__ = [
    "LOG_LEVELS",
    "CoordinatorSettings",
    "DiskLimit",
    "HealthSettings",
    "NodeSettings",
    "ProbeKind",
    "ServerKind",
    "check_tombstone_grace",
    "format_duration",
    "is_loopback_host",
    "normalize_url",
    "parse_bool",
    "parse_disk_limit",
    "parse_duration",
    "parse_int",
    "parse_listen",
    "parse_log_level",
    "pick",
]

NODE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ProbeKind(StrEnum):
    """How the coordinator probes a node (HEALTH_CHECK_TYPE)."""

    HTTP = "http"  # GET the probe path; 200 passes
    TCP = "tcp"  # a connection passes


class ServerKind(StrEnum):
    """The HTTP server a process runs (TORUA_SERVER)."""

    NATIVE = "native"  # Torua's own, on httptools
    HYPERCORN = "hypercorn"  # the fallback


DEFAULT_SERVER = ServerKind.NATIVE


def pick(flag: str | None, env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """Flag over environment over default: the one merging rule of every process."""
    if flag is not None:
        return flag
    value = env.get(name)
    if value is not None and value != "":
        return value
    return default


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    """How the coordinator probes nodes; changeable live through /cluster/config."""

    interval: float = 5.0
    timeout: float = 2.0
    failures: int = 3
    successes: int = 1
    kind: ProbeKind = ProbeKind.HTTP
    path: str = "/health"
    history: int = 100

    def __post_init__(self) -> None:
        # Below these a probe measures the event loop, not the node.
        if self.interval < 0.05:
            raise ConfigError(
                f"HEALTH_CHECK_INTERVAL={format_duration(self.interval)} must be at least 50ms"
            )
        if self.timeout < 0.01:
            raise ConfigError(
                f"HEALTH_CHECK_TIMEOUT={format_duration(self.timeout)} must be at least 10ms"
            )
        if self.timeout >= self.interval:
            raise ConfigError(
                f"HEALTH_CHECK_TIMEOUT={format_duration(self.timeout)} must be shorter than "
                f"HEALTH_CHECK_INTERVAL={format_duration(self.interval)}"
            )
        if self.failures < 1:
            raise ConfigError(f"HEALTH_CHECK_FAILURES={self.failures} must be at least 1")
        if self.successes < 1:
            raise ConfigError(f"HEALTH_CHECK_SUCCESSES={self.successes} must be at least 1")
        if self.kind not in tuple(ProbeKind):
            raise ConfigError(f"HEALTH_CHECK_TYPE={self.kind!r} must be http or tcp")
        object.__setattr__(self, "kind", ProbeKind(self.kind))  # a str from flags or JSON
        if not self.path.startswith("/"):
            raise ConfigError(f"HEALTH_CHECK_PATH={self.path!r} must start with /")
        if self.history < 100:
            raise ConfigError(f"probe history={self.history} must keep at least 100 probes")

    @property
    def lease(self) -> float:
        """How long a node trusts its last word from the coordinator."""
        return 3 * self.interval + self.timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: str | None) -> HealthSettings:
        def get(name: str, flag: str) -> str | None:
            return pick(flags.get(flag), env, name, None)

        kwargs: dict[str, object] = {}
        if (v := get("HEALTH_CHECK_INTERVAL", "interval")) is not None:
            kwargs["interval"] = parse_duration(v, setting="HEALTH_CHECK_INTERVAL")
        if (v := get("HEALTH_CHECK_TIMEOUT", "timeout")) is not None:
            kwargs["timeout"] = parse_duration(v, setting="HEALTH_CHECK_TIMEOUT")
        elif "interval" in kwargs:
            # Derive the timeout from a short interval instead of refusing the default 2s.
            kwargs["timeout"] = min(2.0, float(kwargs["interval"]) / 2)  # type: ignore[arg-type]
        if (v := get("HEALTH_CHECK_FAILURES", "failures")) is not None:
            kwargs["failures"] = parse_int(v, setting="HEALTH_CHECK_FAILURES")
        if (v := get("HEALTH_CHECK_SUCCESSES", "successes")) is not None:
            kwargs["successes"] = parse_int(v, setting="HEALTH_CHECK_SUCCESSES")
        if (v := get("HEALTH_CHECK_TYPE", "kind")) is not None:
            kwargs["kind"] = v.strip().lower()
        if (v := get("HEALTH_CHECK_PATH", "path")) is not None:
            kwargs["path"] = v.strip()
        return cls(**kwargs)  # type: ignore[arg-type]


MAX_DELAY = 24 * 3600.0  # the longest replica or allocation delay


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    health: HealthSettings = field(default_factory=HealthSettings)
    shards: int = 16
    replication_factor: int = 2
    node_capacity: int | None = None
    max_value: int = DEFAULT_MAX_VALUE
    max_moves: int = 2
    # How long a tombstone outlives its delete (TORUA_TOMBSTONE_GRACE); a copy away
    # longer than this is rebuilt from scratch, never merged (docs/replication.md).
    tombstone_grace: float = 86400.0
    # How long a failed node's copies wait for it before they are rebuilt elsewhere
    # (0: at once). Only shards with two or more copies wait.
    replica_delay: float = 0.0
    data_dir: str = "./.torua"
    memory: bool = False
    token: str | None = None
    insecure: bool = False
    # High availability: empty means one coordinator with a local state file.
    etcd_endpoints: tuple[str, ...] = ()
    leader_ttl: float = 10.0
    etcd_prefix: str = "/torua/"
    server: ServerKind = DEFAULT_SERVER  # the HTTP server (TORUA_SERVER, --server)
    access_log: bool = False  # one log line per request (TORUA_ACCESS_LOG, --access-log)

    def __post_init__(self) -> None:
        _check_server(self.server)
        object.__setattr__(self, "server", ServerKind(self.server))
        for endpoint in self.etcd_endpoints:
            if not re.match(r"^https?://[^/\s]+/?$", endpoint):
                raise ConfigError(f"TORUA_ETCD_ENDPOINTS: {endpoint!r} is not a URL")
        if self.etcd_endpoints and self.host in ("0.0.0.0", "::", ""):
            # A coordinator's URL is how the others reach it and forward to it.
            raise ConfigError(
                f"COORDINATOR_ADDR={self.host}:{self.port}: with TORUA_ETCD_ENDPOINTS a "
                "coordinator must listen on the address the other coordinators reach it at, "
                "not on all interfaces"
            )
        bare = self.etcd_prefix.strip("/")
        if not bare or not self.etcd_prefix.isprintable() or any(c.isspace() for c in bare):
            # The prefix is all that keeps two clusters on one etcd apart.
            raise ConfigError(
                f"TORUA_ETCD_PREFIX={self.etcd_prefix!r} must name a key prefix such as "
                "/torua/ (no spaces or control characters)"
            )
        if not 2.0 <= self.leader_ttl <= 3600:
            # etcd grants no lease shorter than about 1.5 s with its default timings.
            raise ConfigError(f"TORUA_LEADER_TTL={self.leader_ttl:g}s must be between 2s and 1h")
        if not 1 <= self.shards <= 65536:
            raise ConfigError(f"TORUA_SHARDS={self.shards} must be between 1 and 65536")
        if not 1 <= self.replication_factor <= 16:
            raise ConfigError(
                f"TORUA_REPLICATION_FACTOR={self.replication_factor} must be between 1 and 16"
            )
        if self.node_capacity is not None and self.node_capacity < 0:
            raise ConfigError(f"TORUA_NODE_CAPACITY={self.node_capacity} must be 0 or more")
        if self.max_value < 1:
            raise ConfigError(f"TORUA_MAX_VALUE={self.max_value} must be at least 1")
        if self.max_moves < 1:
            raise ConfigError(f"max_moves={self.max_moves} must be at least 1")
        check_tombstone_grace(self.tombstone_grace)
        if not 0 <= self.replica_delay <= MAX_DELAY:
            raise ConfigError(
                f"TORUA_REPLICA_DELAY={format_duration(self.replica_delay)} must be between "
                "0s and 24h"
            )
        _check_exposure(self.host, self.token, self.insecure)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def with_port(self, port: int) -> CoordinatorSettings:
        return replace(self, port=port)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    node_id: str
    host: str = "127.0.0.1"
    port: int = 0
    addr: str | None = None
    coordinator: str = "http://127.0.0.1:8080"  # one URL, or several comma-separated (HA)
    capacity: int | None = None
    max_value: int = DEFAULT_MAX_VALUE
    data_dir: str = "./.torua"
    memory: bool = False
    token: str | None = None
    insecure: bool = False
    register_backoff_max: float = 5.0
    server: ServerKind = DEFAULT_SERVER  # the HTTP server (TORUA_SERVER, --server)
    # Self-checks (torua.node.checks): disk watermarks and how often to run them.
    disk_warn: DiskLimit = DiskLimit(used_percent=85.0)
    disk_critical: DiskLimit = DiskLimit(used_percent=95.0)
    check_interval: float = 10.0
    access_log: bool = False  # one log line per request (TORUA_ACCESS_LOG, --access-log)
    # Recently read records a durable node keeps in memory (TORUA_READ_CACHE_MB; 0: none).
    read_cache_mb: int = 32

    def __post_init__(self) -> None:
        _check_server(self.server)
        if self.read_cache_mb < 0:
            raise ConfigError(f"TORUA_READ_CACHE_MB={self.read_cache_mb} must be 0 or more")
        object.__setattr__(self, "server", ServerKind(self.server))
        _check_disk_limits(self.disk_warn, self.disk_critical)
        if not 0.05 <= self.check_interval <= 3600:
            raise ConfigError(
                f"TORUA_CHECK_INTERVAL={format_duration(self.check_interval)} "
                "must be between 50ms and 1h"
            )
        if not NODE_ID_RE.match(self.node_id):
            raise ConfigError(
                f"NODE_ID={self.node_id!r} is not a node id (1-64 of A-Z a-z 0-9 . _ -)"
            )
        if self.capacity is not None and self.capacity < 0:
            raise ConfigError(f"TORUA_NODE_CAPACITY={self.capacity} must be 0 or more")
        if self.max_value < 1:
            raise ConfigError(f"TORUA_MAX_VALUE={self.max_value} must be at least 1")
        if self.addr is not None and not re.match(r"^https?://[^/\s]+$", self.addr):
            raise ConfigError(f"NODE_ADDR={self.addr!r} is not a URL such as http://host:port")
        for url in self.coordinators:
            if not re.match(r"^https?://[^/\s,]+$", url):
                raise ConfigError(f"COORDINATOR_ADDR={self.coordinator!r}: {url!r} is not a URL")
        _check_exposure(self.host, self.token, self.insecure)

    @property
    def coordinators(self) -> list[str]:
        """Every coordinator a node may talk to (any of them forwards to the leader)."""
        return [u.strip().rstrip("/") for u in self.coordinator.split(",") if u.strip()] or [""]

    def public_url(self, bound_port: int | None = None) -> str:
        """The URL the coordinator calls: NODE_ADDR, else derived from the bound socket."""
        if self.addr is not None:
            return self.addr
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{bound_port if bound_port is not None else self.port}"


def check_tombstone_grace(seconds: float) -> None:
    if not 1.0 <= seconds <= 365 * 86400:
        raise ConfigError(
            f"TORUA_TOMBSTONE_GRACE={format_duration(seconds)} must be between 1s and 8760h"
        )


def _check_disk_limits(warn: DiskLimit, critical: DiskLimit) -> None:
    """Of the same form, critical must be the stricter one, or a disk would turn
    critical before any warning gave the operator time to act."""
    if warn.used_percent is not None and critical.used_percent is not None:
        bad = critical.used_percent < warn.used_percent
    elif warn.free_bytes is not None and critical.free_bytes is not None:
        bad = critical.free_bytes > warn.free_bytes
    else:
        bad = False
    if bad:
        raise ConfigError(
            f"TORUA_DISK_CRITICAL ({critical}) must be at or past TORUA_DISK_WARN ({warn})"
        )


def _check_server(server: str) -> None:
    if server not in tuple(ServerKind):
        raise ConfigError(f"TORUA_SERVER={server!r} must be native or hypercorn")


def _check_exposure(host: str, token: str | None, insecure: bool) -> None:
    if not is_loopback_host(host) and not token and not insecure:
        raise ConfigError(
            f"refusing to listen on {host} without TORUA_TOKEN; set TORUA_TOKEN or pass --insecure"
        )


def environ() -> Mapping[str, str]:
    """The process environment; a seam so tests can pass their own mapping."""
    return os.environ
