"""The storage node's HTTP API (SPEC §4).

A node serves only the shard copies the coordinator has given it: a request
for any other shard is a 404 ``shard_not_held``, distinct from a missing key,
so the coordinator can tell "wrong node" from "no such key".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from torua import __version__
from torua.errors import BadRequest, NotFound, Unavailable
from torua.http.auth import install_token_check
from torua.http.errors import ERROR_HOOK, install_error_handlers, read_limited
from torua.http.metrics import ROUTE_SCOPE_KEY
from torua.http.raw import RawResponder
from torua.http.validate import Body, parse_body
from torua.node.fast_store import StoreFastPath
from torua.node.fencing import EPOCH_HEADER, fence
from torua.node.metrics import install_node_metrics
from torua.node.state import NodeRuntime
from torua.node.store import Store, apply_write, next_version
from torua.node.transfer import install_transfer_routes

__all__ = ["create_node_app"]

VERSION_HEADER = "X-Torua-Version"
COORDINATOR_HEADER = "X-Torua-Coordinator"
MAX_KEY_BYTES = 1024


class ControlMessage(Body):
    type: Literal["assignment", "config"]
    shards: list[Annotated[int, Field(ge=0, le=65535)]] | None = Field(
        default=None, max_length=65536
    )
    seq: int = Field(default=0, ge=0, le=2**63 - 1)
    lease: float | None = Field(default=None, gt=0, le=86400)
    interval: float | None = Field(default=None, gt=0, le=86400)
    config: dict[str, Any] | None = None
    session: str = Field(default="", max_length=64)
    # The data identity the coordinator believes this node has: an assignment meant
    # for an earlier incarnation (the node lost its data since) is refused.
    incarnation: str | None = Field(default=None, max_length=64)


def create_node_app(
    runtime: NodeRuntime, store: Store, *, max_value: int, token: str | None = None
) -> QuartTrio:
    app = QuartTrio("torua.node")
    app.config["MAX_CONTENT_LENGTH"] = None  # read_limited enforces limits per route
    install_error_handlers(app)
    install_token_check(app, token)
    # The store path skips Quart (raw ASGI), inside the metrics wrapper.
    app.asgi_app = StoreFastPath(  # type: ignore[method-assign]
        app.asgi_app,
        runtime,
        store,
        token=token,
        max_value=max_value,
        responder=RawResponder(lambda: app.extensions.get(ERROR_HOOK)),
        route_key=ROUTE_SCOPE_KEY,
    )
    install_node_metrics(app, runtime, store)

    @app.before_request
    async def _note_coordinator() -> None:
        fence(runtime, request.headers.get(EPOCH_HEADER), request.method)
        if COORDINATOR_HEADER in request.headers:
            runtime.heard_from_coordinator()

    def held(shard_id: int) -> int:
        if shard_id not in runtime.held:
            raise NotFound(
                f"node {runtime.node_id} holds no copy of shard {shard_id}", code="shard_not_held"
            )
        return shard_id

    def writable(shard_id: int) -> int:
        held(shard_id)
        if not runtime.lease_valid():
            raise Unavailable(
                f"node {runtime.node_id} has not heard from the coordinator within its lease "
                f"({runtime.lease:.1f}s) and refuses writes: it may have been cut off",
                code="lease_expired",
            )
        return shard_id

    def checked_key(key: str) -> str:
        if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise BadRequest(f"a key is 1 to {MAX_KEY_BYTES} bytes of UTF-8", code="invalid_key")
        return key

    def version_from_request() -> int | None:
        raw = request.headers.get(VERSION_HEADER)
        if raw is None:
            return None
        if not raw.isdigit() or not 0 < int(raw) < 2**63:
            raise BadRequest(
                f"{VERSION_HEADER} must be an integer from 1 to 2^63-1", code="invalid_version"
            )
        return int(raw)

    @app.get("/health")
    async def health() -> Response:
        return jsonify({"status": "ok", "node_id": runtime.node_id})

    @app.get("/info")
    async def info() -> Response:
        shards = []
        for shard_id in sorted(runtime.held):
            stats = store.stats(shard_id)
            shards.append({"shard_id": shard_id, "keys": stats.keys, "bytes": stats.bytes})
        return jsonify(
            {
                "node_id": runtime.node_id,
                "addr": runtime.url,
                "version": __version__,
                "uptime": round(runtime.uptime(), 3),
                "shards": shards,
                "shard_count": len(shards),
            }
        )

    @app.post("/control")
    async def control() -> Response:
        message = await parse_body(ControlMessage)
        if message.type == "assignment":
            if message.shards is None:
                raise BadRequest("shards: required for an assignment", code="invalid_field")
            if any(s < 0 for s in message.shards):
                raise BadRequest("shards: shard ids are 0 or more", code="invalid_field")
            if message.lease is None:
                raise BadRequest("lease: required, in seconds, > 0", code="invalid_field")
            if message.incarnation is not None and message.incarnation != runtime.incarnation:
                # Before this node serves or fills anything the coordinator must learn
                # that its copies are empty: it takes them out of the in-sync sets.
                response = jsonify(
                    {
                        "error": "incarnation_mismatch",
                        "message": f"node {runtime.node_id} restarted without its data "
                        f"(incarnation {runtime.incarnation}, not {message.incarnation})",
                        "incarnation": runtime.incarnation,
                        "max_version": store.max_version(),
                    }
                )
                response.status_code = 409
                return response
            interval = message.interval if message.interval and message.interval > 0 else 5.0
            runtime.assign(
                message.shards,
                seq=message.seq,
                lease=message.lease,
                interval=interval,
                session=message.session,
            )
        elif message.config is not None:
            seconds = message.config.get("health_check_interval_seconds")
            if isinstance(seconds, int | float) and seconds > 0:
                runtime.interval = float(seconds)
        return jsonify(
            {
                "ack": True,
                "node_id": runtime.node_id,
                "type": message.type,
                "incarnation": runtime.incarnation,
                "max_version": store.max_version(),
            }
        )

    @app.get("/shard/<int:shard_id>/store/<path:key>")
    async def get_value(shard_id: int, key: str) -> Response:
        record = await store.get(held(shard_id), checked_key(key))
        if record is None or record.value is None:
            response = jsonify({"error": "key_not_found", "message": f"no key {key!r}"})
            response.status_code = 404
            if record is not None:
                response.headers[VERSION_HEADER] = str(record.version)
            return response
        return Response(
            record.value,
            status=200,
            content_type="application/octet-stream",
            headers={VERSION_HEADER: str(record.version)},
        )

    @app.put("/shard/<int:shard_id>/store/<path:key>")
    async def put_value(shard_id: int, key: str) -> Response:
        shard_id, key = writable(shard_id), checked_key(key)
        body = await read_limited(max_value, "values")
        return await _write(shard_id, key, body)

    @app.delete("/shard/<int:shard_id>/store/<path:key>")
    async def delete_value(shard_id: int, key: str) -> Response:
        return await _write(writable(shard_id), checked_key(key), None)

    async def _write(shard_id: int, key: str, value: bytes | None) -> Response:
        version = version_from_request()
        if version is None:
            current = await store.get(shard_id, key)
            version = next_version(current.version if current else store.max_version())
        applied, stored = await apply_write(store, shard_id, key, value, version)
        return Response(
            b"",
            status=204,
            headers={VERSION_HEADER: str(stored), "X-Torua-Applied": "1" if applied else "0"},
        )

    @app.get("/shard/<int:shard_id>/keys")
    async def keys(shard_id: int) -> Response:
        return jsonify({"shard_id": shard_id, "keys": store.keys(held(shard_id))})

    @app.get("/shard/<int:shard_id>/stats")
    async def stats(shard_id: int) -> Response:
        result = store.stats(held(shard_id))
        return jsonify({"shard_id": shard_id, "keys": result.keys, "bytes": result.bytes})

    install_transfer_routes(app, runtime, store, writable)

    @app.route("/shard/", methods=["GET", "PUT", "DELETE"])
    @app.route("/shard/<path:rest>", methods=["GET", "PUT", "DELETE"])
    async def bad_shard_path(rest: str = "") -> Response:
        raise BadRequest(
            "use /shard/<shard id, 0 or more>/store/<non-empty key>", code="invalid_path"
        )

    return app
