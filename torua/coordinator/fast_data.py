"""``GET|PUT|DELETE /data/{key}`` in raw ASGI, in front of the Quart app.

The client API is the hottest path of the coordinator; answering it without
Quart's request machinery saves a large share of each request (LESSONS). Every
other route, and every request this path does not recognise, goes to Quart.
Behaviour is the same as the Quart routes it replaces: token, key and value
limits, JSON errors, metrics route label.
"""

from __future__ import annotations

from typing import Any

from torua.coordinator.router import Router
from torua.errors import ApiError, BadRequest
from torua.http.raw import RawResponder, read_body, token_error

__all__ = ["DataFastPath"]

ROUTE = "/data/<path:key>"
MAX_KEY_BYTES = 1024
OCTETS = b"application/octet-stream"


def checked_key(key: str) -> str:
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("keys are UTF-8 strings", code="invalid_key") from None
    if size > MAX_KEY_BYTES:
        raise BadRequest(f"keys are at most {MAX_KEY_BYTES} bytes of UTF-8", code="invalid_key")
    return key


class DataFastPath:
    def __init__(
        self,
        app: Any,
        router: Router,
        *,
        token: str | None,
        max_value: int,
        responder: RawResponder,
        route_key: str,
    ) -> None:
        self._app = app
        self._router = router
        self._token = token
        self._max_value = max_value
        self._respond = responder
        self._route_key = route_key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        method = scope.get("method")
        if (
            scope["type"] != "http"
            or not path.startswith("/data/")
            or len(path) == 6
            or method not in ("GET", "PUT", "DELETE")
        ):
            await self._app(scope, receive, send)
            return
        scope[self._route_key] = ROUTE
        try:
            if (denied := token_error(scope, self._token)) is not None:
                raise denied
            key = checked_key(path[6:])
            if method == "GET":
                found = await self._router.get(key)
                await self._respond.send(send, 200, found, content_type=OCTETS)
                return
            value: bytes | None = None
            if method == "PUT":
                value = await read_body(receive, self._max_value, "values (TORUA_MAX_VALUE)")
            await self._router.write(key, value)
            await self._respond.send(send, 204)
        except ApiError as err:
            await self._respond.error(send, err)
        except Exception:
            await self._respond.unexpected(send, f"{method} {ROUTE}")
