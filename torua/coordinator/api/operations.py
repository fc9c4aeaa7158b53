"""Operator routes: maintenance, drain, evacuation, live config."""

from __future__ import annotations

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.config import NODE_ID_RE
from torua.coordinator.api.services import Services
from torua.coordinator.api.shutdowns import install_shutdown_routes
from torua.coordinator.control.live_config import (
    ConfigBody,
    apply_config,
    config_view,
    send_to_nodes,
)
from torua.coordinator.control.operations import Operations
from torua.errors import BadRequest
from torua.events import ConfigChanged
from torua.http.validate import Body, parse_body

__all__ = ["install_operation_routes"]

DRAIN_WAIT = 300.0


class MaintenanceBody(Body):
    nodes: list[str] = Field(min_length=1, max_length=1000)
    enabled: bool

    def model_post_init(self, _: object) -> None:
        for node_id in self.nodes:
            if not NODE_ID_RE.match(node_id):
                raise BadRequest(f"nodes: {node_id!r} is not a node id", code="invalid_field")


def install_operation_routes(app: Quart, services: Services, operations: Operations) -> None:
    s = services
    planned = operations.planned
    install_shutdown_routes(app, planned)

    @app.post("/nodes/maintenance")
    async def maintenance() -> Response:
        body = await parse_body(MaintenanceBody)
        modes = operations.set_maintenance(body.nodes, body.enabled)
        await s.sync.push(*body.nodes)
        return jsonify({"nodes": modes, "enabled": body.enabled})

    @app.post("/nodes/<node_id>/drain")
    async def drain(node_id: str) -> Response:
        if planned.leaving(node_id):  # a node stopping for a planned restart keeps its copies
            return jsonify({"node_id": node_id, "moved": 0, "restart": True})
        moved = await operations.drain(node_id, wait=DRAIN_WAIT)
        return jsonify({"node_id": node_id, "moved": moved})

    @app.post("/nodes/<node_id>/evacuate")
    async def evacuate(node_id: str) -> Response:
        operations.evacuate(node_id)
        response = jsonify(operations.evacuation(node_id))
        response.status_code = 202
        return response

    @app.get("/nodes/<node_id>/evacuation")
    async def evacuation(node_id: str) -> Response:
        return jsonify(operations.evacuation(node_id))

    @app.get("/cluster/config")
    async def get_config() -> Response:
        return jsonify(config_view(s.state))

    @app.put("/cluster/config")
    async def put_config() -> Response:
        body = await parse_body(ConfigBody)
        capacity_changed = apply_config(s.state, s.monitor, body)
        s.persister.mark()
        if capacity_changed:
            s.redistributor.replan("reconcile", "node capacity changed")
        config = config_view(s.state)
        await s.bus.publish(ConfigChanged(config=config))
        acks = await send_to_nodes(s.state, s.nodes, config)
        s.sync.mark(*acks)  # new lease and interval
        return jsonify({"config": config, "acks": acks})
