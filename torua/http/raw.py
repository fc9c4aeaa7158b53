"""Raw-ASGI plumbing for the hot paths (``/data`` and ``/shard/*/store``).

Quart's per-request cost dominates a small read; under hypercorn the coordinator and the
nodes answer the routes every read and write takes in plain ASGI instead
(:class:`FastPath`, running the same :class:`~torua.http.exchange.DataRoute`
the native server runs). These helpers keep those answers identical to
Quart's: the same token rule, the same JSON errors (counted by the same
metrics hook), the same body limits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from torua.errors import ApiError, TooLarge
from torua.http.auth import token_error as token_rule
from torua.http.errors import DRAIN_LIMIT
from torua.http.exchange import DataRoute, Reply, error_reply, run_route

__all__ = ["FastPath", "RawResponder", "ScopeRequest", "header", "read_body", "token_error"]

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def token_error(scope: dict[str, Any], token: str | None) -> ApiError | None:
    """The token rule (:func:`torua.http.auth.token_error`) over an ASGI scope."""
    return token_rule(lambda name: header(scope, name), token)


async def read_body(receive: Receive, limit: int, what: str) -> bytes:
    """The whole body, or 413 once it passes ``limit`` (read to its end first)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False) or size > DRAIN_LIMIT:
            break
    if size > limit:
        raise TooLarge(f"{what} are limited to {limit} bytes")
    return b"".join(chunks)


class RawResponder:
    """Sends plain ASGI responses; errors in Torua's JSON shape."""

    def __init__(self, error_hook: Callable[[], Callable[[str], None] | None]) -> None:
        self._error_hook = error_hook

    async def reply(self, send: Send, reply: Reply) -> None:
        if reply.error_code is not None:
            hook = self._error_hook()
            if hook is not None:
                hook(reply.error_code)
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply.header_list()}
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def send(
        self,
        send: Send,
        status: int,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] = (),
        content_type: bytes | None = None,
    ) -> None:
        out = [(b"content-length", str(len(body)).encode()), *headers]
        if content_type is not None:
            out.append((b"content-type", content_type))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def error(
        self, send: Send, err: ApiError, extra: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        await self.reply(send, error_reply(err, list(extra)))

    async def unexpected(self, send: Send, where: str) -> None:
        log.exception("unhandled error on %s", where)
        err = ApiError("internal error; see the server log", code="internal")
        await self.error(send, err)


class ScopeRequest:
    """An ASGI request seen as a :class:`~torua.http.exchange.Request`."""

    __slots__ = ("_receive", "_scope", "method", "path")

    def __init__(self, scope: dict[str, Any], receive: Receive) -> None:
        self._scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]

    def header(self, name: bytes) -> bytes | None:
        return header(self._scope, name)

    async def body(self, limit: int, what: str) -> bytes:
        return await read_body(self._receive, limit, what)


class FastPath:
    """ASGI middleware answering ``routes`` itself and passing the rest to ``app``."""

    def __init__(
        self, app: Any, routes: Iterable[DataRoute], responder: RawResponder, route_key: str
    ) -> None:
        self._app = app
        self._routes = tuple(routes)
        self._respond = responder
        self._route_key = route_key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            for route in self._routes:
                matched = route.match(method, path)
                if matched is not None:
                    scope[self._route_key] = route.template
                    request = ScopeRequest(scope, receive)
                    await self._respond.reply(send, await run_route(route, request, matched))
                    return
        await self._app(scope, receive, send)
