"""The storage node's HTTP API.

A node serves only the shard copies the coordinator has given it: a request
for any other shard is a 404 ``shard_not_held``, distinct from a missing key,
so the coordinator can tell "wrong node" from "no such key".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from quart import Response, jsonify
from quart_trio import QuartTrio

from torua import __version__
from torua.errors import BadRequest
from torua.http.auth import install_token_check
from torua.http.errors import install_error_handlers
from torua.http.quart_exchange import QuartRequest, install_data_routes, quart_reply
from torua.http.validate import Body, parse_body
from torua.node.metrics import install_node_metrics
from torua.node.state import NodeRuntime
from torua.node.store import Store
from torua.node.store_route import StoreApi, held, note_caller, writable
from torua.node.transfer import install_transfer_routes

__all__ = ["create_node_app"]


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
    store_api = StoreApi(runtime, store, token=token, max_value=max_value)
    # The store path skips Quart (native server, or raw ASGI inside the metrics wrapper).
    install_data_routes(app, store_api)
    install_node_metrics(app, runtime, store)

    @app.before_request
    async def _note_coordinator() -> None:
        note_caller(runtime, QuartRequest())

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

    async def store_reply(shard_id: int, key: str) -> Response:
        return quart_reply(await store_api.handle(QuartRequest(), (shard_id, key)))

    app.route("/shard/<int:shard_id>/store/<path:key>", methods=["GET", "PUT", "DELETE"])(
        store_reply
    )

    @app.get("/shard/<int:shard_id>/keys")
    async def keys(shard_id: int) -> Response:
        return jsonify({"shard_id": shard_id, "keys": await store.keys(held(runtime, shard_id))})

    @app.get("/shard/<int:shard_id>/stats")
    async def stats(shard_id: int) -> Response:
        result = store.stats(held(runtime, shard_id))
        return jsonify({"shard_id": shard_id, "keys": result.keys, "bytes": result.bytes})

    install_transfer_routes(app, runtime, store, lambda shard_id: writable(runtime, shard_id))

    @app.route("/shard/", methods=["GET", "PUT", "DELETE"])
    @app.route("/shard/<path:rest>", methods=["GET", "PUT", "DELETE"])
    async def bad_shard_path(rest: str = "") -> Response:
        raise BadRequest(
            "use /shard/<shard id, 0 or more>/store/<non-empty key>", code="invalid_path"
        )

    return app
