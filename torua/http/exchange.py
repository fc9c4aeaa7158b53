"""One request and one reply, independent of the server that carries them.

The data routes (``/data/{key}`` on the coordinator, ``/shard/{id}/store/{key}``
on a node) are written once against :class:`Request` and :class:`Reply`, and
three carriers run them: the native HTTP server, the raw-ASGI fast path under
hypercorn, and the Quart route (reached for HEAD). So their token, key, size,
lease and fencing rules cannot drift apart between servers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from torua.errors import ApiError, Unavailable

__all__ = ["DataRoute", "Reply", "Request", "error_reply", "run_route"]

log = logging.getLogger(__name__)

Headers = Sequence[tuple[bytes, bytes]]
JSON = b"application/json"


class Request(Protocol):
    """What a data route may ask of a request."""

    method: str
    path: str

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        ...

    async def body(self, limit: int, what: str) -> bytes:
        """The whole body; :class:`~torua.errors.TooLarge` past ``limit`` bytes."""
        ...


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Headers = ()
    content_type: bytes | None = None
    error_code: str | None = None  # set on JSON errors, for the error counter

    def header_list(self) -> list[tuple[bytes, bytes]]:
        out = [(b"content-length", str(len(self.body)).encode()), *self.headers]
        if self.content_type is not None:
            out.append((b"content-type", self.content_type))
        return out


def error_reply(err: ApiError, extra: Headers = ()) -> Reply:
    """An error in Torua's JSON shape, with Retry-After on a 503."""
    headers = list(extra)
    if isinstance(err, Unavailable):
        headers.append((b"retry-after", str(err.retry_after).encode()))
    body = json.dumps({"error": err.code, "message": err.message}).encode() + b"\n"
    return Reply(err.status, body, headers, JSON, err.code)


class DataRoute(Protocol):
    """A route answered without Quart: it claims requests by method and path."""

    template: str  # the route label in metrics, e.g. ``/data/<path:key>``

    def match(self, method: str, path: str) -> object | None:
        """What :meth:`handle` needs from the path, or None when not this route's."""
        ...

    async def handle(self, request: Request, matched: object) -> Reply: ...


async def run_route(route: DataRoute, request: Request, matched: object) -> Reply:
    """The route's reply; an error becomes its JSON reply, never a traceback."""
    try:
        return await route.handle(request, matched)
    except ApiError as err:
        return error_reply(err)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route.template)
        return error_reply(ApiError("internal error; see the server log", code="internal"))
