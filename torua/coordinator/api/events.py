"""Live views: ``GET /events`` as Server-Sent Events, ``GET /`` the dashboard.

Each SSE client gets its own lossy subscription to the event bus:
a client that reads slowly, or not at all, loses events once its small
buffer is full, and the bus never waits for it. A stream opens with a
``hello`` event carrying a snapshot (cluster, nodes, shards, recent events),
so a client needs no second request; then one SSE event per bus event::

    id: <n>                      per-stream sequence, hello is 0
    event: <type>                node_joined, health_changed, shard_moved, ...
    data: <event_json(event)>    one line of JSON, with "type"

and ``: keepalive`` comment lines while the bus is quiet. The stream ends when
the client goes away, when the bus closes, or as soon as the coordinator
starts to stop, so graceful shutdown never waits for a dashboard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import trio
from quart import Quart, Response

from torua.coordinator.api.services import Services
from torua.coordinator.api.views import cluster_info, node_view, shards_view
from torua.errors import Unavailable
from torua.events import ClusterEvent, event_json

__all__ = ["MAX_STREAMS", "install_event_routes", "snapshot"]

log = logging.getLogger(__name__)

MAX_STREAMS = 100  # concurrent SSE clients; more get 503
STREAM_BUFFER = 32  # events a client may lag behind before it loses some
KEEPALIVE = 15.0  # seconds of quiet before a comment line keeps proxies and clients content
BATCH = 64  # events already queued are sent in one write
RECENT = 50  # recent events carried by hello
RETRY_MS = 2000  # how soon EventSource reconnects after the stream ends

_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def snapshot(services: Services) -> dict[str, Any]:
    """What ``hello`` carries: the same views as /cluster/info, /nodes and /shards."""
    state, monitor = services.state, services.monitor
    return {
        "cluster": cluster_info(state, monitor),
        "nodes": [node_view(state, monitor, r) for r in state.registry.all()],
        "shards": shards_view(state, services.load.shard_rate if services.load else None),
        "recent": [event_json(e) for e in services.bus.recent[-RECENT:]],
    }


def sse(seq: int, kind: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {seq}\nevent: {kind}\ndata: {payload}\n\n"


async def _next_event(
    events: trio.MemoryReceiveChannel[ClusterEvent], stopping: trio.Event, *, patience: float
) -> ClusterEvent | None:
    """The next event; None after ``patience`` s of quiet, at stop, or when the bus closed."""
    received: list[ClusterEvent] = []

    async def receive(cancel: trio.CancelScope) -> None:
        try:
            received.append(await events.receive())
        except (trio.EndOfChannel, trio.ClosedResourceError):
            pass
        cancel.cancel(reason="event received or bus closed")

    async def stop(cancel: trio.CancelScope) -> None:
        await stopping.wait()
        cancel.cancel(reason="coordinator stopping")

    async with trio.open_nursery() as race:
        race.cancel_scope.deadline = trio.current_time() + patience
        race.start_soon(receive, race.cancel_scope)
        race.start_soon(stop, race.cancel_scope)
    return received[0] if received else None  # an event received is never dropped here


class _Streams:
    """The SSE streams being served; counted only while their body runs, so none leaks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.active = 0

    async def stream(self) -> AsyncIterator[str]:
        s = self.services
        self.active += 1
        try:
            if self.active > MAX_STREAMS:  # lost a race with other new clients
                yield f"retry: {RETRY_MS * 5}\n: too many event streams\n\n"
                return
            # Closing the subscription on the way out is enough: the bus drops it.
            with s.bus.subscribe(lossy=True, buffer=STREAM_BUFFER) as events:
                seq = 0
                yield f"retry: {RETRY_MS}\n\n" + sse(seq, "hello", snapshot(s))
                while True:
                    event = await _next_event(events, s.stopping, patience=KEEPALIVE)
                    if event is None:
                        if s.stopping.is_set() or events.statistics().open_send_channels == 0:
                            return  # the coordinator is stopping, or the bus has closed
                        yield ": keepalive\n\n"
                        continue
                    batch = [event]
                    while len(batch) < BATCH:  # what is already queued goes in one write
                        try:
                            batch.append(events.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                            break
                    chunk = []
                    for queued in batch:
                        seq += 1
                        wire = event_json(queued)
                        chunk.append(sse(seq, wire["type"], wire))
                    yield "".join(chunk)
        finally:
            self.active -= 1


def _dashboard() -> tuple[bytes, str]:
    """The page, and a Content-Security-Policy that allows its own inline script only."""
    page = resources.files("torua.coordinator.api").joinpath("static/dashboard.html").read_bytes()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _SCRIPT.finditer(page)
    )
    policy = (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"style-src 'unsafe-inline'; script-src {hashes} 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, policy


def install_event_routes(app: Quart, services: Services) -> None:
    streams = _Streams(services)
    page, policy = _dashboard()

    @app.get("/events")
    async def events() -> Response:
        if streams.active >= MAX_STREAMS:
            raise Unavailable(
                f"at most {MAX_STREAMS} event streams at once; try again later",
                code="too_many_streams",
                retry_after=5,
            )
        response = Response(streams.stream(), status=200, content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
        response.timeout = None  # Quart's RESPONSE_TIMEOUT (60 s) would cut the stream
        return response

    @app.get("/")
    async def dashboard() -> Response:
        response = Response(page, status=200, content_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
