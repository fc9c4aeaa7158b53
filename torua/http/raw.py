"""Raw-ASGI plumbing for the hot paths (``/data`` and ``/shard/*/store``).

Quart costs 150-300 µs per request (LESSONS); on the routes every read and
write takes, the coordinator and the nodes answer in plain ASGI instead. These
helpers keep those answers identical to Quart's: the same token rule, the same
JSON errors (counted by the same metrics hook), the same body limits.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from torua.errors import ApiError, TooLarge, Unavailable
from torua.http.errors import DRAIN_LIMIT

__all__ = ["RawResponder", "header", "read_body", "token_error"]

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def token_error(scope: dict[str, Any], token: str | None) -> ApiError | None:
    """SPEC §7's rule: bearer token or ``torua_token`` cookie; 401 without, 403 wrong."""
    if not token:
        return None
    offered: str | None = None
    auth = header(scope, b"authorization")
    if auth is not None and auth[:7].lower() == b"bearer ":
        offered = auth[7:].decode("latin-1")
    else:
        cookie = header(scope, b"cookie")
        if cookie is not None:
            morsel = SimpleCookie(cookie.decode("latin-1")).get("torua_token")
            offered = None if morsel is None else unquote(morsel.value)
    if offered is None:
        error = ApiError("this cluster needs its token (TORUA_TOKEN)", code="unauthorized")
        error.status = 401
        return error
    if not hmac.compare_digest(offered.encode(), token.encode()):
        error = ApiError("the token given is not this cluster's token", code="forbidden")
        error.status = 403
        return error
    return None


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
    """Sends plain ASGI responses; errors in SPEC's JSON shape."""

    def __init__(self, error_hook: Callable[[], Callable[[str], None] | None]) -> None:
        self._error_hook = error_hook

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
        hook = self._error_hook()
        if hook is not None:
            hook(err.code)
        headers = (
            [(b"retry-after", str(err.retry_after).encode())]
            if isinstance(err, Unavailable)
            else []
        )
        headers.extend(extra)
        body = json.dumps({"error": err.code, "message": err.message}).encode() + b"\n"
        await self.send(send, err.status, body, headers, b"application/json")

    async def unexpected(self, send: Send, where: str) -> None:
        log.exception("unhandled error on %s", where)
        err = ApiError("internal error; see the server log", code="internal")
        await self.error(send, err)
