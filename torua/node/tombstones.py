"""Node routes for tombstone GC: purge old tombstones, wipe a copy before a full fill.

The node cannot tell when purging is safe (that needs every copy of the shard
to be in sync, which only the coordinator knows), so it purges only when told,
and measures a tombstone's age with its own clock (the coordinator's clock
never enters the comparison). docs/replication.md, "Tombstone GC", says why
the pair of rules is safe.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from quart import Quart, Response, jsonify

from torua.http.validate import Body, parse_body
from torua.node.state import NodeRuntime
from torua.node.store import Store
from torua.node.store_route import writable

__all__ = ["PurgeBody", "install_tombstone_routes"]


class PurgeBody(Body):
    shards: list[Annotated[int, Field(ge=0, le=65535)]] = Field(max_length=65536)
    older_than: float = Field(ge=0, le=10 * 365 * 86400)  # seconds


def install_tombstone_routes(app: Quart, runtime: NodeRuntime, store: Store) -> None:
    @app.post("/tombstones/purge")
    async def purge() -> Response:
        """Purge the listed shards' tombstones older than ``older_than`` seconds;
        shards this node does not hold are skipped and listed."""
        body = await parse_body(PurgeBody)
        purged: dict[str, int] = {}
        for shard_id in sorted(set(body.shards)):
            if shard_id in runtime.held:
                purged[str(shard_id)] = await store.purge_tombstones(shard_id, body.older_than)
        skipped = sorted(set(body.shards) - runtime.held)
        return jsonify({"purged": purged, "not_held": skipped})

    @app.post("/shard/<int:shard_id>/wipe")
    async def wipe(shard_id: int) -> Response:
        """Empty a held copy so a fill rebuilds it from scratch: a copy away longer
        than the tombstone grace may hold keys whose deletes were purged since."""
        await store.drop_shard(writable(runtime, shard_id))
        return jsonify({"shard_id": shard_id, "wiped": True})
