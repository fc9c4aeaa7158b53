"""Serve a Quart app the same way in every process, on the server the settings name.

Two servers: the native one (:mod:`torua.http.native`: httptools parsing, the
data routes answered without any ASGI layer) and hypercorn's trio worker,
kept selectable (``--server hypercorn``, ``TORUA_SERVER=hypercorn``) as the
known-good fallback. For hypercorn, why not ``QuartTrio.run_task``: it
hard-codes an access log to stdout, and the access log costs ~20% of
throughput; one function builds hypercorn's config so limits and timeouts are
the same for coordinator and nodes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from torua.http.access_log import ACCESS_LOGGER, HypercornAccessLogger
from torua.http.errors import ERROR_HOOK
from torua.http.metrics import REQUEST_METRICS_KEY
from torua.http.native import serve_native
from torua.http.native.limits import ServerLimits
from torua.http.quart_exchange import data_routes_of

__all__ = ["SERVERS", "hypercorn_config", "serve_app", "serve_then_cancel"]

SERVERS = ("native", "hypercorn")
"""What ``--server`` / ``TORUA_SERVER`` may name."""


class _Config(Config):
    """Hypercorn's config, with a kernel deadline on unacknowledged writes.

    hypercorn 0.18 shields its socket writes from cancellation, so a client that
    stops reading (a stalled event stream, a huge response) could hold shutdown
    forever. TCP_USER_TIMEOUT makes the kernel drop such a connection after 10 s
    of unacknowledged data; accepted sockets inherit it from the listener.
    """

    def create_sockets(self) -> Any:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if option is not None:
            for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
                sock.setsockopt(socket.IPPROTO_TCP, option, 10_000)
        return sockets


def hypercorn_config(host: str, port: int, *, access_log: bool = False) -> Config:
    config = _Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = logging.getLogger(ACCESS_LOGGER) if access_log else None
    config.logger_class = HypercornAccessLogger
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0
    # A slow or silent client must not hold a connection forever.
    config.read_timeout = 60
    config.keep_alive_timeout = 30
    config.h11_max_incomplete_size = 64 * 1024  # request line + headers
    config.include_server_header = False
    return config


class _InFlight:
    """ASGI wrapper that counts HTTP requests still being answered."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1
        self._idle = trio.Event() if self.count == 1 else self._idle
        body_done = False

        async def tracked_receive() -> Any:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.disconnect" or (
                message["type"] == "http.request" and not message.get("more_body", False)
            ):
                body_done = True
            return message

        async def draining_send(message: Any) -> None:
            # A response that ends before the request body was read (a 404, a 401, an
            # early 503) left the body on the connection, and hypercorn 0.18 then
            # sometimes stalls the next request on that keep-alive connection for the
            # client's whole timeout. Reading the rest first keeps the connection clean.
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body")
                and not body_done
            ):
                with trio.move_on_after(5):
                    while not body_done:
                        await tracked_receive()
            # Shielded: hypercorn 0.18 records a response start in h11 before its first
            # checkpoint and in its own state only after it. A cancellation in between
            # (a term guard, a forward given up on a leader change) made it answer 500 on
            # a response already under way; h11 raised, and the error stopped the whole
            # server. The socket write itself is shielded by hypercorn (and bounded by
            # TCP_USER_TIMEOUT), so this adds no unbounded wait; the caller's
            # cancellation lands at its next checkpoint.
            with trio.CancelScope(shield=True):
                await send(message)

        try:
            await self.app(scope, tracked_receive, draining_send)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        while self.count:
            await self._idle.wait()


async def serve_app(
    app: Any,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    graceful: float = 5.0,
    server: str = "hypercorn",
    access_log: bool = False,
) -> None:
    """Serve until ``shutdown_trigger`` returns; report the bound port via ``started``.

    ``server="native"`` serves with :mod:`torua.http.native`, answering the
    app's data routes (:func:`~torua.http.quart_exchange.install_data_routes`)
    natively, with the app's request metrics and error counter.

    Shutdown waits for in-flight requests (up to ``graceful`` seconds), then
    closes everything, idle keep-alive connections included: hypercorn 0.18
    otherwise holds an idle keep-alive connection open for its whole graceful
    timeout, which made every node stop take 5 s.
    """
    if server == "native":
        extensions = getattr(app, "extensions", {})
        await serve_native(
            app,
            host,
            port,
            routes=data_routes_of(app),
            meter=extensions.get(REQUEST_METRICS_KEY),
            error_hook=extensions.get(ERROR_HOOK),
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
            limits=ServerLimits(access_log=access_log),
        )
        return
    if server != "hypercorn":
        raise ValueError(f"no server {server!r}: use one of {', '.join(SERVERS)}")
    tracked = _InFlight(app)
    config = hypercorn_config(host, port, access_log=access_log)

    async def _serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(tracked, config, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(_serve)
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
        await shutdown_trigger()
        with trio.move_on_after(graceful):
            await tracked.wait_idle()
        nursery.cancel_scope.cancel(reason="server shut down")


async def serve_then_cancel(
    owner: trio.Nursery,
    app: Any,
    host: str,
    port: int,
    *,
    stopping: trio.Event,
    server: str = "hypercorn",
    access_log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``stopping``; once in-flight requests are answered, cancel
    ``owner`` so that nothing the service started outlives its server."""
    await serve_app(
        app,
        host,
        port,
        shutdown_trigger=stopping.wait,
        task_status=task_status,
        server=server,
        access_log=access_log,
    )
    owner.cancel_scope.cancel(reason="server stopped")
