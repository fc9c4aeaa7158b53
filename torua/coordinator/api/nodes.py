"""Routes of the cluster's members: register, list, one node's info and probe
history, removal. The membership rules are the service's
(:class:`~torua.coordinator.control.membership.Membership`); these parse and answer."""

from __future__ import annotations

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.config import NODE_ID_RE, normalize_url
from torua.coordinator.api.services import Services
from torua.coordinator.api.views import node_info, node_view
from torua.http.validate import Body, parse_body

__all__ = ["NodeSpec", "RegisterBody", "install_node_routes"]

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


def install_node_routes(app: Quart, s: Services) -> None:
    state = s.state
    record_of = s.membership.record_of

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
