"""``GET|PUT|DELETE /data/{key}``: the client data API, and every rule it applies.

The one implementation of these routes: the native server runs it directly,
hypercorn through the raw-ASGI fast path, Quart (HEAD) through its route. The
rules: the cluster token, keys of 1 to 1024 bytes of UTF-8, values up to
TORUA_MAX_VALUE; reads and writes go to the router.
"""

from __future__ import annotations

from torua.coordinator.data.router import Router
from torua.errors import BadRequest
from torua.http.auth import token_error
from torua.http.exchange import Reply, Request
from torua.limits import MAX_KEY_BYTES

__all__ = ["MAX_KEY_BYTES", "DataApi", "checked_key"]

OCTETS = b"application/octet-stream"
_METHODS = frozenset({"GET", "PUT", "DELETE"})


def checked_key(key: str) -> str:
    """``key`` if it is 1 to MAX_KEY_BYTES bytes of UTF-8; else 400 ``invalid_key``."""
    if not key:
        raise BadRequest("the key is empty: use /data/<key>", code="invalid_key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("keys are UTF-8 strings", code="invalid_key") from None
    if size > MAX_KEY_BYTES:
        raise BadRequest(f"keys are at most {MAX_KEY_BYTES} bytes of UTF-8", code="invalid_key")
    return key


class DataApi:
    """The data route over a router; claims ``/data/<non-empty key>`` for GET, PUT, DELETE."""

    template = "/data/<path:key>"

    def __init__(self, router: Router, *, token: str | None, max_value: int) -> None:
        self._router = router
        self._token = token
        self._max_value = max_value

    def match(self, method: str, path: str) -> str | None:
        if method in _METHODS and path.startswith("/data/") and len(path) > 6:
            return path[6:]
        return None

    async def handle(self, request: Request, matched: object) -> Reply:
        assert isinstance(matched, str)
        if (denied := token_error(request.header, self._token)) is not None:
            raise denied
        key = checked_key(matched)
        method = request.method
        if method in ("GET", "HEAD"):
            return Reply(200, await self._router.get(key), content_type=OCTETS)
        value: bytes | None = None
        if method == "PUT":
            value = await request.body(self._max_value, "values (TORUA_MAX_VALUE)")
        await self._router.write(key, value)
        return Reply(204)
