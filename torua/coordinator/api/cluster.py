"""Routes about the cluster as a whole: liveness, its summary, and broadcasting
a config message to every node."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.coordinator.api.services import Services
from torua.coordinator.api.views import cluster_info
from torua.coordinator.nodes.client import NodeUnreachable
from torua.coordinator.state.registry import NodeRecord
from torua.errors import BadRequest
from torua.fanout import fan_out
from torua.http.validate import Body, parse_body

__all__ = ["BroadcastBody", "install_cluster_routes"]


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


def install_cluster_routes(app: Quart, s: Services) -> None:
    state = s.state

    @app.get("/health")
    async def health() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/cluster/info")
    async def info_view() -> Response:
        return jsonify(cluster_info(state, s.monitor) | (s.info() if s.info else {}))

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
