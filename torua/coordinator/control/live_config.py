"""``GET|PUT /cluster/config``: the settings an operator may change live.

A PUT is validated whole before anything changes (400 names the bad field;
unknown fields are bad), then applied on the coordinator (health settings take
effect from each node's next probe, without a restart), saved with the
cluster state, and sent to every node concurrently; the answer says which
nodes acknowledged it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from torua.config import (
    MAX_DELAY,
    HealthSettings,
    check_tombstone_grace,
    format_duration,
    parse_duration,
)
from torua.coordinator.control.health import HealthMonitor
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.state.registry import NodeRecord
from torua.coordinator.state.state import ClusterState
from torua.errors import BadRequest, ConfigError
from torua.fanout import fan_out
from torua.http.validate import Body

__all__ = ["ConfigBody", "apply_config", "config_view", "send_to_nodes"]


DURATION = r"^([0-9]+(\.[0-9]*)?(ns|us|ms|s|m|h))+$"


class ConfigBody(Body):
    health_check_interval: str | None = Field(default=None, max_length=32, pattern=DURATION)
    health_check_timeout: str | None = Field(default=None, max_length=32, pattern=DURATION)
    health_check_failures: int | None = Field(default=None, ge=1, le=1000)
    health_check_successes: int | None = Field(default=None, ge=1, le=1000)
    health_check_type: Literal["http", "tcp"] | None = None
    health_check_path: str | None = Field(default=None, pattern=r"^/[^\s]*$", max_length=200)
    node_capacity: int | None = Field(default=None, ge=0)
    max_moves: int | None = Field(default=None, ge=1, le=64)
    tombstone_grace: str | None = Field(default=None, max_length=32, pattern=DURATION)
    replica_delay: str | None = Field(default=None, max_length=32, pattern=DURATION)


def config_view(state: ClusterState) -> dict[str, Any]:
    health = state.health
    return {
        "health_check_interval": format_duration(health.interval),
        "health_check_timeout": format_duration(health.timeout),
        "health_check_failures": health.failures,
        "health_check_successes": health.successes,
        "health_check_type": health.kind,
        "health_check_path": health.path,
        "node_capacity": state.node_capacity,
        "max_moves": state.max_moves,
        "tombstone_grace": format_duration(state.tombstone_grace),
        "replica_delay": format_duration(state.replica_delay),
    }


def _duration(name: str, text: str) -> float:
    try:
        return parse_duration(text, setting=name)
    except ConfigError as exc:
        raise BadRequest(str(exc), code="invalid_field") from None


def tombstone_grace(text: str) -> float:
    seconds = _duration("tombstone_grace", text)
    try:
        check_tombstone_grace(seconds)
    except ConfigError as exc:
        raise BadRequest(f"tombstone_grace: {exc}", code="invalid_field") from None
    return seconds


def plan_config(
    state: ClusterState, body: ConfigBody
) -> tuple[HealthSettings, int | None, int, float]:
    """The settings a PUT asks for, fully validated; nothing is applied here."""
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if body.health_check_interval is not None:
        changes["interval"] = _duration("health_check_interval", body.health_check_interval)
    if body.health_check_timeout is not None:
        changes["timeout"] = _duration("health_check_timeout", body.health_check_timeout)
    for field, key in (
        ("health_check_failures", "failures"),
        ("health_check_successes", "successes"),
        ("health_check_type", "kind"),
        ("health_check_path", "path"),
    ):
        if getattr(body, field) is not None:
            changes[key] = getattr(body, field)
    for field in (
        "health_check_interval",
        "health_check_timeout",
        "health_check_failures",
        "health_check_successes",
        "health_check_type",
        "health_check_path",
        "max_moves",
        "tombstone_grace",
        "replica_delay",
    ):
        if field in given and getattr(body, field) is None:
            raise BadRequest(f"{field}: may not be null", code="invalid_field")
    try:
        health = replace(state.health, **changes)
    except ConfigError as exc:
        raise BadRequest(f"health_check_timeout/interval: {exc}", code="invalid_field") from None
    capacity = body.node_capacity if "node_capacity" in given else state.node_capacity
    max_moves = body.max_moves if body.max_moves is not None else state.max_moves
    delay = state.replica_delay
    if body.replica_delay is not None:
        delay = _duration("replica_delay", body.replica_delay)
        if delay > MAX_DELAY:
            raise BadRequest("replica_delay: at most 24h", code="invalid_field")
    return health, capacity, max_moves, delay


async def send_to_nodes(
    state: ClusterState, nodes: NodeClient, config: dict[str, Any]
) -> dict[str, bool]:
    message = {
        "type": "config",
        "config": {**config, "health_check_interval_seconds": state.health.interval},
    }

    async def acked(record: NodeRecord) -> bool:
        try:
            reply = await nodes.control(
                record.addr, message, deadline=max(2.0, state.health.timeout + 1)
            )
        except NodeUnreachable:
            return False
        return reply.status == 200

    records = state.registry.all()
    acks = await fan_out(acked, records)
    return dict(sorted(zip((r.id for r in records), acks, strict=True)))


def apply_config(state: ClusterState, monitor: HealthMonitor, body: ConfigBody) -> bool:
    """Validate then apply; True when node capacities changed (placement must rerun)."""
    health, capacity, max_moves, delay = plan_config(state, body)
    if body.tombstone_grace is not None:
        tombstone_grace(body.tombstone_grace)  # validated before anything changes
    capacity_changed = capacity != state.node_capacity
    state.health, state.node_capacity, state.max_moves = health, capacity, max_moves
    state.replica_delay = delay  # holds already running keep their deadline
    if body.tombstone_grace is not None:
        state.tombstone_grace = tombstone_grace(body.tombstone_grace)
    monitor.update_settings(health)
    return capacity_changed
