"""``/nodes/{id}/shutdown``: tell the cluster a node will stop, to return or for good.

``PUT {"type": "restart", "allocation_delay": "5m"}`` holds the node's copies
while it restarts (``allocation_delay`` from the moment it stops, default 5m);
``PUT {"type": "remove"}`` starts moving every copy off (a drain that answers at
once). ``GET`` reports progress, ``DELETE`` withdraws the notice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.config import MAX_DELAY, NODE_ID_RE, ConfigError, parse_duration
from torua.coordinator.control.planned import PlannedShutdowns
from torua.errors import BadRequest, NotFound
from torua.http.validate import Body, parse_body

__all__ = ["install_shutdown_routes"]

DURATION = r"^([0-9]+(\.[0-9]*)?(ns|us|ms|s|m|h))+$"
DEFAULT_DELAY = "5m"


class ShutdownBody(Body):
    type: Literal["restart", "remove"]
    allocation_delay: str | None = Field(default=None, max_length=32, pattern=DURATION)


def _delay(body: ShutdownBody) -> float:
    if body.type == "remove":
        if body.allocation_delay is not None:
            raise BadRequest(
                "allocation_delay: only a restart waits for its node", code="invalid_field"
            )
        return 0.0
    try:
        delay = parse_duration(body.allocation_delay or DEFAULT_DELAY, setting="allocation_delay")
    except ConfigError as exc:
        raise BadRequest(str(exc), code="invalid_field") from None
    if delay > MAX_DELAY:
        raise BadRequest("allocation_delay: at most 24h", code="invalid_field")
    return delay


def _node_id(node_id: str) -> str:
    if not NODE_ID_RE.match(node_id):
        raise NotFound(f"no node {node_id!r}", code="node_not_found")
    return node_id


def install_shutdown_routes(app: Quart, planned: PlannedShutdowns) -> None:
    @app.put("/nodes/<node_id>/shutdown")
    async def put_shutdown(node_id: str) -> Response:
        body = await parse_body(ShutdownBody)
        delay = _delay(body)
        return jsonify(planned.request(_node_id(node_id), body.type, delay))

    @app.get("/nodes/<node_id>/shutdown")
    async def get_shutdown(node_id: str) -> Response:
        return jsonify(planned.view(_node_id(node_id)))

    @app.delete("/nodes/<node_id>/shutdown")
    async def delete_shutdown(node_id: str) -> Response:
        planned.cancel(_node_id(node_id))
        return Response(b"", status=204)
