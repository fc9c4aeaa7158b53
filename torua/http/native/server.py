"""The native server: listeners, connections, native routes, and a graceful drain.

Why not hypercorn for every request: its h11 state machine, a task per
request and the ASGI layers cost about twenty times what answering a key
from memory costs. Here the data routes run straight off the parser in the
connection's own task; any other request goes to the ASGI app through
:func:`~torua.http.native.asgi_bridge.run_asgi`, so the control plane needs
no change.

Shutdown: the listeners close, idle connections close at once, busy ones
answer their current request (with ``connection: close``) for up to
``limits.graceful`` seconds; then whatever is left is cancelled, so no task
outlives :meth:`NativeServer.serve`.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any, Protocol

import trio

from torua.http.access_log import log_request
from torua.http.exchange import DataRoute, run_route
from torua.http.native.asgi_bridge import run_asgi
from torua.http.native.connection import Connection
from torua.http.native.exchange import Exchange, NativeRequest
from torua.http.native.lifespan import lifespan
from torua.http.native.limits import ServerLimits
from torua.http.native.parser import RequestReader
from torua.sim import seam

__all__ = ["Meter", "NativeServer", "serve_native"]

log = logging.getLogger(__name__)

# Out of file descriptors or memory: accepting again at once would spin.
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
ACCEPT_BACKOFF = 0.1


class Meter(Protocol):
    """Request metrics for natively answered routes (:class:`torua.http.metrics.RequestMetrics`)."""

    def observe(
        self, method: str, route: str, status: int, elapsed: float, received: int, sent: int
    ) -> None: ...


class NativeServer:
    def __init__(
        self,
        app: Any,
        routes: Sequence[DataRoute] = (),
        *,
        limits: ServerLimits | None = None,
        meter: Meter | None = None,
        error_hook: Callable[[str], None] | None = None,
    ) -> None:
        self._app = app
        self._routes = tuple(routes)
        self.limits = limits or ServerLimits()
        self._meter = meter
        self._error_hook = error_hook
        self._closing = False
        self._connections: set[Connection] = set()
        self._all_closed = trio.Event()
        self._all_closed.set()
        self._listeners: list[trio.abc.Listener[trio.abc.Stream]] = []

    @property
    def connections(self) -> int:
        return len(self._connections)

    def closing(self) -> bool:
        return self._closing

    # connections -----------------------------------------------------------

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it closes (tests pass in-memory streams)."""
        connection = Connection(stream, self._handle, self.limits, self.closing, self._error_hook)
        self._connections.add(connection)
        if len(self._connections) == 1:
            self._all_closed = trio.Event()
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            if not self._connections:
                self._all_closed.set()

    async def _handle(self, exchange: Exchange, reader: RequestReader, conn: Connection) -> None:
        head = exchange.head
        method, path = head.method, head.path
        started = perf_counter() if self.limits.access_log else 0.0
        for route in self._routes:
            matched = route.match(method, path)
            if matched is not None:
                await self._native(route, matched, exchange)
                break
        else:
            await run_asgi(self._app, exchange, reader, conn.client, conn.server)
        if self.limits.access_log:
            target = head.raw_path + (b"?" + head.query if head.query else b"")
            log_request(
                conn.client,
                method,
                target,
                exchange.status,
                exchange.sent,
                perf_counter() - started,
            )

    async def _native(self, route: DataRoute, matched: object, exchange: Exchange) -> None:
        started = perf_counter()
        reply = await run_route(route, NativeRequest(exchange), matched)
        if reply.error_code is not None and self._error_hook is not None:
            self._error_hook(reply.error_code)
        if self._meter is not None:
            self._meter.observe(
                exchange.head.method,
                route.template,
                reply.status,
                perf_counter() - started,
                exchange.body_read,
                len(reply.body),
            )
        await exchange.respond(reply.status, reply.header_list(), reply.body)

    # listening -------------------------------------------------------------

    async def serve(
        self,
        host: str,
        port: int,
        *,
        shutdown_trigger: Callable[[], Awaitable[None]],
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` until ``shutdown_trigger`` returns, then drain."""
        listeners = await _listen(host, port)
        self._listeners = listeners
        bound = _port(listeners[0])
        async with lifespan(self._app), trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)
            task_status.started(bound)
            await shutdown_trigger()
            await self.shutdown()
            nursery.cancel_scope.cancel(reason="server shut down")

    async def _accept(
        self, listener: trio.abc.Listener[trio.abc.Stream], nursery: trio.Nursery
    ) -> None:
        while not self._closing:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except OSError as exc:
                if exc.errno not in _ACCEPT_RETRY:
                    raise
                log.error("accept failed (%s); retrying in %gs", exc, ACCEPT_BACKOFF)
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            nursery.start_soon(self.serve_stream, stream)

    async def shutdown(self) -> None:
        """Stop accepting; close idle connections; give busy ones ``graceful`` seconds."""
        self._closing = True
        for listener in self._listeners:
            await listener.aclose()
        for connection in list(self._connections):
            if connection.idle:
                connection.scope.cancel(reason="server shutting down")
        with trio.move_on_after(self.limits.graceful):
            await self._all_closed.wait()
        for connection in list(self._connections):
            connection.scope.cancel(reason="server shut down")


async def _listen(host: str, port: int) -> list[trio.abc.Listener[trio.abc.Stream]]:
    listeners = await seam.current().open_tcp_listeners(port, host)
    if port == 0 and len(listeners) > 1:
        # Several addresses (IPv4 and IPv6 for a name) would get several ports.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is not None:
        # A client that stops reading cannot hold a response's write forever:
        # the kernel drops a connection with data unacknowledged for 10 s.
        for listener in listeners:
            if isinstance(listener, trio.SocketListener):
                listener.socket.setsockopt(socket.IPPROTO_TCP, option, 10_000)
    return listeners


def _port(listener: trio.abc.Listener[trio.abc.Stream]) -> int:
    if isinstance(listener, seam.SimulatedListener):
        return listener.port
    assert isinstance(listener, trio.SocketListener)
    port: int = listener.socket.getsockname()[1]
    return port


async def serve_native(
    app: Any,
    host: str,
    port: int,
    *,
    routes: Sequence[DataRoute] = (),
    meter: Meter | None = None,
    error_hook: Callable[[str], None] | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    limits: ServerLimits | None = None,
) -> None:
    """Serve ``app`` (and ``routes`` natively) until ``shutdown_trigger`` returns."""
    server = NativeServer(app, routes, limits=limits, meter=meter, error_hook=error_hook)
    await server.serve(host, port, shutdown_trigger=shutdown_trigger, task_status=task_status)
