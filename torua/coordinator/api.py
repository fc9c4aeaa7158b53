"""The coordinator's HTTP API: thin handlers over the services.

Handlers validate, call one service method, and render a view; every rule
lives in the services, so the API never holds state of its own.
"""

from __future__ import annotations

from typing import Any

import trio
from pydantic import Field
from quart import Response, jsonify
from quart_trio import QuartTrio

from torua.cluster import Move
from torua.config import NODE_ID_RE, normalize_url
from torua.coordinator.api_events import install_event_routes
from torua.coordinator.api_load import install_load_routes, rebalance_body, rebalance_moves
from torua.coordinator.api_ops import install_operation_routes
from torua.coordinator.bulk import BulkBody, run_bulk
from torua.coordinator.data_route import DataApi, checked_key
from torua.coordinator.metrics import install_coordinator_metrics
from torua.coordinator.node_client import NodeUnreachable
from torua.coordinator.registry import NodeRecord
from torua.coordinator.services import Services
from torua.coordinator.state import ClusterState
from torua.coordinator.views import cluster_info, node_info, node_view, shards_view
from torua.errors import BadRequest, Conflict, NotFound, Unavailable
from torua.fanout import fan_out
from torua.http.auth import install_token_check
from torua.http.errors import install_error_handlers
from torua.http.quart_exchange import QuartRequest, install_data_routes, quart_reply
from torua.http.validate import Body, parse_body
from torua.limits import BULK_BODY_BYTES

__all__ = ["Services", "create_coordinator_app"]

MOVE_WAIT = 300.0  # a move API call answers when the data has moved, or after this long
NODE_ID_PATTERN = NODE_ID_RE.pattern
ADDR_PATTERN = r"^(https?://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?$"


class NodeSpec(Body):
    id: str = Field(pattern=NODE_ID_PATTERN)
    addr: str = Field(pattern=ADDR_PATTERN, max_length=300)
    capacity: int | None = Field(default=None, ge=0)
    incarnation: str | None = Field(default=None, max_length=64)
    durable: bool = True
    max_version: int = Field(default=0, ge=0)


class RegisterBody(Body):
    node: NodeSpec


class AssignBody(Body):
    shard_id: int = Field(ge=0)
    node_id: str = Field(pattern=NODE_ID_PATTERN)


class BroadcastBody(Body):
    path: str = Field(pattern=r"^/[A-Za-z0-9/_\-.]*$", max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, _: object) -> None:
        if self.path.rstrip("/") == "/control" and self.payload.get("type") == "assignment":
            # Only the coordinator's own sync may say which copies a node holds.
            raise BadRequest(
                "payload: assignments cannot be broadcast; send config messages",
                code="invalid_field",
            )


def move_json(move: Move) -> dict[str, Any]:
    return {
        "shard_id": move.shard_id,
        "source": move.source,
        "target": move.target,
        "primary": move.primary,
        "reason": move.reason,
    }


def _leads(state: ClusterState, shard_id: int, node_id: str) -> bool:
    """The node is the shard's primary, holds every record and may serve."""
    shard = state.table.shards[shard_id]
    return shard.primary == node_id and node_id in shard.in_sync and state.is_up(node_id)


def create_coordinator_app(services: Services) -> QuartTrio:
    s = services
    state = s.state
    app = QuartTrio("torua.coordinator")
    app.config["MAX_CONTENT_LENGTH"] = None  # read_limited enforces limits per route
    install_error_handlers(app)
    install_token_check(app, state.settings.token)
    data_api = DataApi(s.router, token=state.settings.token, max_value=state.settings.max_value)
    # The client data path skips Quart (native server, or raw ASGI inside the metrics wrapper).
    install_data_routes(app, data_api)
    install_coordinator_metrics(app, state, s.monitor, s.mover, s.metrics)

    record_of = s.membership.record_of

    @app.get("/health")
    async def health() -> Response:
        return jsonify({"status": "ok"})

    @app.post("/register")
    async def register() -> Response:
        spec = (await parse_body(RegisterBody)).node
        await s.membership.register(
            spec.id, normalize_url(spec.addr), spec.capacity, spec.incarnation, spec.max_version
        )
        return Response(b"", status=204)

    @app.get("/nodes")
    async def nodes() -> Response:
        return jsonify({"nodes": [node_view(state, s.monitor, r) for r in state.registry.all()]})

    @app.get("/nodes/<node_id>/info")
    async def info(node_id: str) -> Response:
        return jsonify(node_info(state, s.monitor, record_of(node_id)))

    @app.get("/nodes/<node_id>/health")
    async def health_history(node_id: str) -> Response:
        record_of(node_id)
        history = s.monitor.health(node_id).history()
        return jsonify([probe.to_json() for probe in history])

    @app.delete("/nodes/<node_id>")
    async def remove(node_id: str) -> Response:
        await s.membership.remove(node_id)
        return Response(b"", status=204)

    @app.get("/shards")
    async def shards() -> Response:
        return jsonify(shards_view(state, s.load.shard_rate if s.load else None))

    @app.post("/shards/assign")
    async def assign() -> Response:
        body = await parse_body(AssignBody)
        if body.shard_id >= state.table.num_shards:
            raise NotFound(
                f"no shard {body.shard_id}: shards are 0..{state.table.num_shards - 1}",
                code="shard_not_found",
            )
        record_of(body.node_id)
        moves: list[Move] = []
        with trio.move_on_after(MOVE_WAIT) as waited:
            # A replica still catching up is promoted once it has every write.
            await s.mover.wait_in_sync(body.shard_id, body.node_id)
            try:
                moves = s.redistributor.assign(body.shard_id, body.node_id)
            except ValueError as exc:
                raise Conflict(str(exc), code="cannot_assign") from None
            touched = {n for m in moves for n in (m.source, m.target) if n}
            await s.sync.push(*touched)
            await s.mover.wait_settled({body.shard_id})
        shard = state.table.shards[body.shard_id]
        if not waited.cancelled_caught and not _leads(state, body.shard_id, body.node_id):
            # Settled, but not as asked: the target failed part-way and the move was
            # rolled back (or placement re-homed the shard); the caller must not
            # believe the data is on the node it named.
            raise Unavailable(
                f"the move of shard {body.shard_id} to {body.node_id} failed: the shard "
                f"is served by {shard.primary or 'no node'}",
                code="move_failed",
            )
        response = jsonify(
            {
                "shard_id": body.shard_id,
                "primary": shard.primary,
                "done": not waited.cancelled_caught,
                "moves": [move_json(m) for m in moves],
            }
        )
        response.status_code = 202 if waited.cancelled_caught else 200
        return response

    @app.post("/rebalance")
    async def rebalance() -> Response:
        moves = rebalance_moves(s, await rebalance_body())
        touched = {n for m in moves for n in (m.source, m.target) if n}
        await s.sync.push(*touched)
        with trio.move_on_after(MOVE_WAIT) as waited:
            await s.mover.wait_settled({m.shard_id for m in moves})
        response = jsonify(
            {"moves": [move_json(m) for m in moves], "done": not waited.cancelled_caught}
        )
        response.status_code = 202 if waited.cancelled_caught else 200
        return response

    async def data_reply(key: str) -> Response:
        return quart_reply(await data_api.handle(QuartRequest(), key))

    app.route("/data/<path:key>", methods=["GET", "PUT", "DELETE"])(data_reply)

    @app.post("/data/_bulk")
    async def bulk() -> Response:
        body = await parse_body(BulkBody, max_bytes=BULK_BODY_BYTES)
        return jsonify({"results": await run_bulk(state, s.router, s.nodes, body)})

    @app.route("/data/", methods=["GET", "PUT", "DELETE"])
    @app.route("/data", methods=["GET", "PUT", "DELETE"])
    async def empty_key() -> Response:
        checked_key("")  # the data route's own rule, and its message
        raise AssertionError("checked_key refuses an empty key")

    @app.post("/broadcast")
    async def broadcast() -> Response:
        body = await parse_body(BroadcastBody)
        records = state.registry.all()

        async def send(record: NodeRecord) -> dict[str, Any]:
            try:
                reply = await s.nodes.request(
                    "POST", record.addr, body.path, payload=body.payload, deadline=5.0
                )
                ok = 200 <= reply.status < 300
                error = None if ok else f"HTTP {reply.status}"
            except NodeUnreachable as exc:
                ok, error = False, str(exc)
            return {"node_id": record.id, "ok": ok, "error": error}

        results = await fan_out(send, records)
        return jsonify({"sent_to": len(records), "results": results})

    install_operation_routes(app, s, s.operations)
    install_event_routes(app, s)  # GET /events (SSE) and GET / (the dashboard)
    install_load_routes(app, s)  # GET /load, GET /dashboard/plots.js

    @app.get("/cluster/info")
    async def info_view() -> Response:
        return jsonify(cluster_info(state, s.monitor) | (s.info() if s.info else {}))

    return app
