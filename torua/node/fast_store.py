"""``GET|PUT|DELETE /shard/{id}/store/{key}`` in raw ASGI, in front of Quart.

Every client read and write ends here, so the node answers it without Quart's
request machinery (LESSONS: 150-300 µs a request). Same rules as the Quart
routes it shadows: token, held shard (404 ``shard_not_held``), lease (503 on
writes), key and value limits, version headers.
"""

from __future__ import annotations

from typing import Any

from torua.errors import ApiError, BadRequest, NotFound, Unavailable
from torua.http.raw import RawResponder, header, read_body, token_error
from torua.node.fencing import fence
from torua.node.state import NodeRuntime
from torua.node.store import Store, apply_write, next_version

__all__ = ["StoreFastPath"]

ROUTE = "/shard/<int:shard_id>/store/<path:key>"
MAX_KEY_BYTES = 1024
OCTETS = b"application/octet-stream"


class StoreFastPath:
    def __init__(
        self,
        app: Any,
        runtime: NodeRuntime,
        store: Store,
        *,
        token: str | None,
        max_value: int,
        responder: RawResponder,
        route_key: str,
    ) -> None:
        self._app = app
        self._runtime = runtime
        self._store = store
        self._token = token
        self._max_value = max_value
        self._respond = responder
        self._route_key = route_key

    def _parse(self, path: str) -> tuple[int, str] | None:
        if not path.startswith("/shard/"):
            return None
        shard_text, sep, rest = path[7:].partition("/store/")
        if not sep or not rest or not shard_text.isdigit() or not shard_text.isascii():
            return None
        return int(shard_text), rest

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope.get("method")
        parsed = None
        if scope["type"] == "http" and method in ("GET", "PUT", "DELETE"):
            parsed = self._parse(scope.get("path", ""))
        if parsed is None:
            await self._app(scope, receive, send)
            return
        scope[self._route_key] = ROUTE
        shard_id, key = parsed
        runtime = self._runtime
        try:
            if (denied := token_error(scope, self._token)) is not None:
                raise denied
            epoch = header(scope, b"x-torua-epoch")
            fence(runtime, None if epoch is None else epoch.decode("latin-1"), method)
            if header(scope, b"x-torua-coordinator") is not None:
                runtime.heard_from_coordinator()
            if shard_id not in runtime.held:
                raise NotFound(
                    f"node {runtime.node_id} holds no copy of shard {shard_id}",
                    code="shard_not_held",
                )
            try:
                if len(key.encode("utf-8")) > MAX_KEY_BYTES:
                    raise UnicodeEncodeError("utf-8", key, 0, 1, "too long")
            except UnicodeEncodeError:
                raise BadRequest(
                    f"a key is 1 to {MAX_KEY_BYTES} bytes of UTF-8", code="invalid_key"
                ) from None
            if method == "GET":
                await self._get(send, shard_id, key)
                return
            if not runtime.lease_valid():
                raise Unavailable(
                    f"node {runtime.node_id} has not heard from the coordinator within its "
                    f"lease ({runtime.lease:.1f}s) and refuses writes: it may have been cut off",
                    code="lease_expired",
                )
            value = None
            if method == "PUT":
                value = await read_body(receive, self._max_value, "values")
            await self._write(scope, send, shard_id, key, value)
        except ApiError as err:
            await self._respond.error(send, err)
        except Exception:
            await self._respond.unexpected(send, f"{method} {ROUTE}")

    async def _get(self, send: Any, shard_id: int, key: str) -> None:
        record = await self._store.get(shard_id, key)
        if record is None or record.value is None:
            # For a tombstone, also say which version deleted it.
            extra = [] if record is None else [(b"x-torua-version", str(record.version).encode())]
            await self._respond.error(
                send, NotFound(f"no key {key!r}", code="key_not_found"), extra
            )
            return
        await self._respond.send(
            send, 200, record.value, [(b"x-torua-version", str(record.version).encode())], OCTETS
        )

    async def _write(
        self, scope: Any, send: Any, shard_id: int, key: str, value: bytes | None
    ) -> None:
        raw = header(scope, b"x-torua-version")
        if raw is None:
            current = await self._store.get(shard_id, key)
            version = next_version(current.version if current else self._store.max_version())
        elif raw.isdigit() and 0 < int(raw) < 2**63:
            version = int(raw)
        else:
            raise BadRequest(
                "X-Torua-Version must be an integer from 1 to 2^63-1", code="invalid_version"
            )
        applied, stored = await apply_write(self._store, shard_id, key, value, version)
        await self._respond.send(
            send,
            204,
            b"",
            [
                (b"x-torua-version", str(stored).encode()),
                (b"x-torua-applied", b"1" if applied else b"0"),
            ],
        )
