"""Routes of the shard map: the map itself, moving a primary, rebalancing.

A move answers once the data has moved (or 202 after ``MOVE_WAIT``), so a
caller that gets 200 may rely on the data being where it asked.
"""

from __future__ import annotations

from typing import Any

import trio
from pydantic import Field
from quart import Quart, Response, jsonify

from torua.cluster import Move
from torua.coordinator.api.load import rebalance_body, rebalance_moves
from torua.coordinator.api.nodes import NODE_ID_PATTERN
from torua.coordinator.api.services import Services
from torua.coordinator.api.views import shards_view
from torua.coordinator.state.state import ClusterState
from torua.errors import Conflict, NotFound, Unavailable
from torua.http.validate import Body, parse_body

__all__ = ["AssignBody", "install_shard_routes", "move_json"]

MOVE_WAIT = 300.0  # a move API call answers when the data has moved, or after this long


class AssignBody(Body):
    shard_id: int = Field(ge=0)
    node_id: str = Field(pattern=NODE_ID_PATTERN)


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


def install_shard_routes(app: Quart, s: Services) -> None:
    state = s.state
    record_of = s.membership.record_of

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
