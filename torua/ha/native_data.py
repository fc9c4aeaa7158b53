"""``/data/{key}`` of a leading HA coordinator, answered by the native server.

An HA coordinator serves one ASGI dispatcher (leader's API, follower views,
forwarding), so by itself it offers the native server no data route and every
read and write would take the ASGI bridge. :class:`LeaderData` claims a data
request only while this coordinator leads a valid term, and runs the term's
own data route inside the term's guard, as the dispatcher does: the request
is cancelled when the lease may lapse, and an answer the term did not
outlive becomes 503 ``not_leader``. A follower's data requests are not
claimed; they go through the bridge to forwarding. The meter and error hook
count into the leading term's app, where ``GET /metrics`` reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torua.errors import ApiError, Unavailable
from torua.ha.term import Term
from torua.http.errors import ERROR_HOOK
from torua.http.exchange import DataRoute, Reply, Request, error_reply
from torua.http.metrics import REQUEST_METRICS_KEY
from torua.http.quart_exchange import DATA_ROUTES_KEY, data_routes_of

__all__ = ["LeaderData", "NativeAware"]

Leading = Callable[[], tuple[Term, Any] | None]


class LeaderData:
    template = "/data/<path:key>"

    def __init__(self, leading: Leading) -> None:
        self._leading = leading

    def match(self, method: str, path: str) -> tuple[Term, DataRoute, object] | None:
        leading = self._leading()
        if leading is None or not leading[0].valid():
            return None
        term, app = leading
        for route in data_routes_of(app):
            matched = route.match(method, path)
            if matched is not None:
                return term, route, matched
        return None

    async def handle(self, request: Request, matched: object) -> Reply:
        assert isinstance(matched, tuple)
        term, route, inner = matched
        with term.guard():
            try:
                reply = await route.handle(request, inner)
            except ApiError as err:
                reply = error_reply(err)
            if term.valid():
                return reply
        raise Unavailable(
            "this coordinator's leadership ended while the request ran; "
            "its outcome is unknown: retry",
            code="not_leader",
        )

    def _extension(self, key: str) -> Any:
        leading = self._leading()
        return None if leading is None else leading[1].extensions.get(key)

    def observe(
        self, method: str, route: str, status: int, elapsed: float, received: int, sent: int
    ) -> None:
        metrics = self._extension(REQUEST_METRICS_KEY)
        if metrics is not None:
            metrics.observe(method, route, status, elapsed, received, sent)

    def count_error(self, code: str) -> None:
        hook = self._extension(ERROR_HOOK)
        if hook is not None:
            hook(code)


class NativeAware:
    """An ASGI app carrying the ``extensions`` the native server reads its routes from."""

    def __init__(self, asgi: Callable[..., Any], data: LeaderData) -> None:
        self._asgi = asgi
        self.extensions = {
            DATA_ROUTES_KEY: (data,),
            REQUEST_METRICS_KEY: data,
            ERROR_HOOK: data.count_error,
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)
