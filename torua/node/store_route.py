"""``GET|PUT|DELETE /shard/{id}/store/{key}``: a node's copy of the data, and its rules.

Every client read and write ends here. This is the one place those rules
live, for the native server, the raw-ASGI fast path under hypercorn and the
Quart routes alike: the cluster token; the leader epoch (older epochs are
fenced off writes); a held shard (404 ``shard_not_held``); a writable lease
(503 ``lease_expired``); keys of 1 to 1024 bytes of UTF-8; values up to the
node's limit; the ``X-Torua-Version`` a write carries.
"""

from __future__ import annotations

from torua.errors import BadRequest, NotFound, Unavailable
from torua.http.auth import token_error
from torua.http.exchange import Reply, Request, error_reply
from torua.limits import MAX_KEY_BYTES
from torua.node.fencing import fence
from torua.node.state import NodeRuntime
from torua.node.store import Store, apply_write, next_version

__all__ = ["MAX_KEY_BYTES", "StoreApi", "checked_key", "held", "parse_version", "writable"]

OCTETS = b"application/octet-stream"
_METHODS = frozenset({"GET", "PUT", "DELETE"})


def held(runtime: NodeRuntime, shard_id: int) -> int:
    """``shard_id`` if this node serves a copy of it; else 404 ``shard_not_held``."""
    if shard_id not in runtime.held:
        raise NotFound(
            f"node {runtime.node_id} holds no copy of shard {shard_id}", code="shard_not_held"
        )
    return shard_id


def writable(runtime: NodeRuntime, shard_id: int) -> int:
    """``shard_id`` if held and the lease still allows writes; else 404 or 503."""
    held(runtime, shard_id)
    if not runtime.lease_valid():
        raise Unavailable(
            f"node {runtime.node_id} has not heard from the coordinator within its lease "
            f"({runtime.lease:.1f}s) and refuses writes: it may have been cut off",
            code="lease_expired",
        )
    return shard_id


def checked_key(key: str) -> str:
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        size = 0
    if not 0 < size <= MAX_KEY_BYTES:
        raise BadRequest(f"a key is 1 to {MAX_KEY_BYTES} bytes of UTF-8", code="invalid_key")
    return key


def parse_version(raw: bytes | None) -> int | None:
    """The X-Torua-Version a write names, or None; 400 when it is not 1..2^63-1."""
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadRequest(
            "X-Torua-Version must be an integer from 1 to 2^63-1", code="invalid_version"
        )
    return int(raw)


def note_caller(runtime: NodeRuntime, request: Request) -> None:
    """Every request: fence older leader epochs; a coordinator's call renews the lease."""
    epoch = request.header(b"x-torua-epoch")
    fence(runtime, None if epoch is None else epoch.decode("latin-1"), request.method)
    if request.header(b"x-torua-coordinator") is not None:
        runtime.heard_from_coordinator()


class StoreApi:
    """The store route over a node's runtime and store."""

    template = "/shard/<int:shard_id>/store/<path:key>"

    def __init__(
        self, runtime: NodeRuntime, store: Store, *, token: str | None, max_value: int
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._token = token
        self._max_value = max_value
        self._load = runtime.load

    def match(self, method: str, path: str) -> tuple[int, str] | None:
        if method not in _METHODS or not path.startswith("/shard/"):
            return None
        shard_text, sep, rest = path[7:].partition("/store/")
        if not sep or not rest or not shard_text.isdigit() or not shard_text.isascii():
            return None
        return int(shard_text), rest

    async def handle(self, request: Request, matched: object) -> Reply:
        assert isinstance(matched, tuple)
        shard_id, key = matched
        runtime = self._runtime
        if (denied := token_error(request.header, self._token)) is not None:
            raise denied
        note_caller(runtime, request)
        held(runtime, shard_id)
        checked_key(key)
        if request.method in ("GET", "HEAD"):
            return await self._get(shard_id, key)
        writable(runtime, shard_id)
        value = None
        if request.method == "PUT":
            value = await request.body(self._max_value, "values")
        return await self._write(request, shard_id, key, value)

    async def _get(self, shard_id: int, key: str) -> Reply:
        record = await self._store.get(shard_id, key)
        self._load.read(shard_id, len(record.value) if record and record.value else 0)
        if record is None or record.value is None:
            # For a tombstone, also say which version deleted it.
            extra = [] if record is None else [(b"x-torua-version", str(record.version).encode())]
            return error_reply(NotFound(f"no key {key!r}", code="key_not_found"), extra)
        return Reply(
            200, record.value, [(b"x-torua-version", str(record.version).encode())], OCTETS
        )

    async def _write(self, request: Request, shard_id: int, key: str, value: bytes | None) -> Reply:
        version = parse_version(request.header(b"x-torua-version"))
        if version is None:
            current = await self._store.get(shard_id, key)
            version = next_version(current.version if current else self._store.max_version())
        applied, stored = await apply_write(self._store, shard_id, key, value, version)
        self._load.write(shard_id, 0 if value is None else len(value))
        return Reply(
            204,
            b"",
            [
                (b"x-torua-version", str(stored).encode()),
                (b"x-torua-applied", b"1" if applied else b"0"),
            ],
        )
