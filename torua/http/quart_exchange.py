"""Data routes inside a Quart app: one install call, whichever server runs the app.

:func:`install_data_routes` puts the routes in front of Quart as a raw-ASGI
fast path (what hypercorn runs) and records them in ``app.extensions`` for
the native server, which answers them before any ASGI layer. The Quart
routes of the same paths (reached for HEAD) go through :func:`quart_reply`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quart import Quart, Response, current_app, request

from torua.http.errors import ERROR_HOOK, collect_within
from torua.http.exchange import DataRoute, Reply
from torua.http.metrics import ROUTE_SCOPE_KEY
from torua.http.raw import FastPath, RawResponder

__all__ = [
    "DATA_ROUTES_KEY",
    "QuartRequest",
    "data_routes_of",
    "install_data_routes",
    "quart_reply",
]

DATA_ROUTES_KEY = "torua_data_routes"


def install_data_routes(app: Quart, *routes: DataRoute) -> None:
    """Answer ``routes`` without Quart; call before the metrics wrapper is installed."""
    responder = RawResponder(lambda: app.extensions.get(ERROR_HOOK))
    app.asgi_app = FastPath(app.asgi_app, routes, responder, ROUTE_SCOPE_KEY)  # type: ignore[method-assign]
    app.extensions[DATA_ROUTES_KEY] = tuple(routes)


def data_routes_of(app: Any) -> Sequence[DataRoute]:
    """The routes an app asked to be answered natively (none for a plain ASGI callable)."""
    extensions = getattr(app, "extensions", None)
    return () if extensions is None else tuple(extensions.get(DATA_ROUTES_KEY, ()))


class QuartRequest:
    """Quart's current request as a :class:`~torua.http.exchange.Request`."""

    def __init__(self) -> None:
        self.method = request.method
        self.path = request.path

    def header(self, name: bytes) -> bytes | None:
        value = request.headers.get(name.decode("latin-1"))
        return None if value is None else value.encode("latin-1", "replace")

    async def body(self, limit: int, what: str) -> bytes:
        return await collect_within(request.body, limit, what)


def quart_reply(reply: Reply) -> Response:
    if reply.error_code is not None:
        hook = current_app.extensions.get(ERROR_HOOK)
        if hook is not None:
            hook(reply.error_code)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reply.headers}
    content_type = None if reply.content_type is None else reply.content_type.decode("latin-1")
    return Response(reply.body, status=reply.status, headers=headers, content_type=content_type)
