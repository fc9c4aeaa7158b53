"""Load routes: ``GET /load`` (rates and the plots' history) and the ``by`` of ``/rebalance``.

``POST /rebalance`` keeps its old meaning with no body (``by: copies``, even
out copy counts); ``{"by": "load"}`` moves copies off the busiest node by
request rate instead (:mod:`torua.cluster.load_balance`), at most
``max_moves`` of them (the body's, else the cluster's setting).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Literal

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.cluster import Move, NodeState, ShardTable, reconcile
from torua.cluster.load_balance import balance_load
from torua.coordinator.api.services import Services
from torua.errors import BadRequest, Conflict, Unavailable
from torua.http.errors import read_limited
from torua.http.validate import Body, validate

__all__ = ["RebalanceBody", "install_load_routes", "rebalance_body", "rebalance_moves"]


class RebalanceBody(Body):
    by: Literal["copies", "load"] = "copies"
    max_moves: int | None = Field(default=None, ge=1, le=64)


async def rebalance_body() -> RebalanceBody:
    """The optional body: none (or empty) means the default, copy-count balance."""
    raw = await read_limited(64 * 1024, "JSON bodies")
    if not raw.strip():
        return RebalanceBody()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="malformed_json")
    return validate(RebalanceBody, data)


def rebalance_moves(services: Services, body: RebalanceBody) -> list[Move]:
    """Run the placement rule the body asks for against the live table."""
    s = services
    if body.by == "copies":
        return s.redistributor.rebalance("requested through the API")
    load = s.load
    if load is None or load.polls < 2:
        # Not an outage: the rates need two readings of the nodes' counters first.
        raise Conflict(
            "request rates are not measured yet: try again in a few seconds",
            code="load_unknown",
        )
    state = s.state
    max_moves = body.max_moves or state.max_moves
    rates = load.copy_rates()

    def by_load(table: ShardTable, nodes: Mapping[str, NodeState]) -> list[Move]:
        moves = reconcile(table, nodes)  # a broken placement is repaired first, as always
        busy = {shard for shard, _ in state.syncing()}
        busy.update(shard for shard, holders in state.retiring.items() if holders)
        busy.update(m.shard_id for m in moves)
        return moves + balance_load(table, nodes, rates, max_moves=max_moves, busy=busy)

    return s.redistributor.apply(by_load, f"rebalance by load (at most {max_moves} moves)")


def install_load_routes(app: Quart, services: Services) -> None:
    plots = resources.files("torua.coordinator.api").joinpath("static/plots.js").read_bytes()

    @app.get("/dashboard/plots.js")
    async def plots_script() -> Response:
        """The dashboard's charts, a file of its own so the page's policy can allow it."""
        response = Response(plots, status=200, content_type="text/javascript; charset=utf-8")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/load")
    async def load() -> Response:
        if services.load is None:
            raise Unavailable("this coordinator does not lead: ask the leader", code="not_leader")
        return jsonify(services.load.history())
