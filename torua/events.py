"""Cluster events and the bus that carries them.

Producers (probe tasks, the API, the redistributor) send events into one
memory channel; :class:`EventBus` fans each event out to every subscriber's
own channel, because memory channels are queues, not broadcasts. Reliable
subscribers (the redistributor) get back-pressure; lossy ones (SSE clients,
the dashboard) lose events rather than ever stalling the bus.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from torua.sim import seam

__all__ = [
    "ClusterEvent",
    "ConfigChanged",
    "EventBus",
    "MoveProgress",
    "NodeHealthChanged",
    "NodeJoined",
    "NodeModeChanged",
    "NodeRemoved",
    "ShardMoved",
    "event_json",
]

log = logging.getLogger(__name__)


def _now() -> float:
    return seam.current().time()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeJoined:
    """A node registered for the first time, or came back with a new address."""

    node_id: str
    addr: str
    rejoined: bool = False
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeHealthChanged:
    node_id: str
    old: str
    new: str
    reason: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeModeChanged:
    node_id: str
    old: str
    new: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRemoved:
    node_id: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardMoved:
    shard_id: int
    source: str | None
    target: str | None
    primary: bool
    reason: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveProgress:
    node_id: str
    total: int
    moved: int
    state: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanged:
    config: dict[str, Any]
    at: float = field(default_factory=_now)


ClusterEvent = (
    NodeJoined
    | NodeHealthChanged
    | NodeModeChanged
    | NodeRemoved
    | ShardMoved
    | MoveProgress
    | ConfigChanged
)

_KIND = {
    NodeJoined: "node_joined",
    NodeHealthChanged: "health_changed",
    NodeModeChanged: "mode_changed",
    NodeRemoved: "node_removed",
    ShardMoved: "shard_moved",
    MoveProgress: "progress",
    ConfigChanged: "config_changed",
}


def event_json(event: ClusterEvent) -> dict[str, Any]:
    """The wire form of an event: its fields plus ``type``."""
    return {"type": _KIND[type(event)], **dataclasses.asdict(event)}


class EventBus:
    """Fan-out from one inbound channel to one channel per subscriber."""

    def __init__(self, *, buffer: int = 256) -> None:
        self._send, self._receive = trio.open_memory_channel[ClusterEvent](buffer)
        self._reliable: list[trio.MemorySendChannel[ClusterEvent]] = []
        self._lossy: list[trio.MemorySendChannel[ClusterEvent]] = []
        self.dropped = 0
        self.recent: list[ClusterEvent] = []

    def sender(self) -> trio.MemorySendChannel[ClusterEvent]:
        """A clone of the inbound side; the holder closes it when done."""
        return self._send.clone()

    async def publish(self, event: ClusterEvent) -> None:
        """Waits for room: for events the redistributor must see (membership, config)."""
        try:
            await self._send.send(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def publish_nowait(self, event: ClusterEvent) -> None:
        """For progress and notices only: drops rather than block when the bus is full."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("event bus full, dropped %s", type(event).__name__)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def subscribe(
        self, *, lossy: bool = False, buffer: int = 64
    ) -> trio.MemoryReceiveChannel[ClusterEvent]:
        send, receive = trio.open_memory_channel[ClusterEvent](buffer)
        (self._lossy if lossy else self._reliable).append(send)
        return receive

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async with self._receive:
                async for event in self._receive:
                    self.recent.append(event)
                    del self.recent[:-200]
                    for channel in list(self._reliable):
                        try:
                            await channel.send(event)
                        except (trio.ClosedResourceError, trio.BrokenResourceError):
                            self._reliable.remove(channel)
                    for channel in list(self._lossy):
                        try:
                            channel.send_nowait(event)
                        except trio.WouldBlock:
                            self.dropped += 1
                        except (trio.ClosedResourceError, trio.BrokenResourceError):
                            self._lossy.remove(channel)
        finally:
            for channel in self._reliable + self._lossy:
                channel.close()
