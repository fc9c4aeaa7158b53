"""ImportBatcher: the shards of one bulk request share one import request per node."""

from __future__ import annotations

import json

import pytest
import trio

from torua.coordinator.data.import_batch import ImportBatcher
from torua.coordinator.nodes.client import NodeUnreachable, Reply
from torua.http.records import decode_sections


class FakeNodes:
    """Answers ``import_sections`` per section: 404 for shards in ``unheld``."""

    def __init__(self, *, unheld: frozenset[int] = frozenset(), status: int = 200) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.unheld = unheld
        self.status = status
        self.fail = False

    async def import_sections(self, addr: str, sections: bytes) -> Reply:
        await trio.sleep(0.01)
        if self.fail:
            raise NodeUnreachable(f"{addr}: connection refused")
        shards = [shard for shard, _ in decode_sections(sections, max_records=10_000)]
        self.calls.append((addr, shards))
        if self.status != 200:
            return Reply(self.status, b'{"error": "invalid_field", "message": "no"}', {})
        results = [
            {"shard_id": s, "status": 404, "error": "shard_not_held", "message": "not here"}
            if s in self.unheld
            else {"shard_id": s, "status": 200, "received": 0, "applied": 0}
            for s in shards
        ]
        return Reply(200, json.dumps({"results": results}).encode(), {})


async def _send_all(
    batcher: ImportBatcher, sends: list[tuple[str, int]]
) -> dict[tuple[str, int], Reply]:
    replies: dict[tuple[str, int], Reply] = {}

    async def one(addr: str, shard: int) -> None:
        replies[addr, shard] = await batcher.send(addr, shard, b"")

    async with trio.open_nursery() as nursery:
        for addr, shard in sends:
            nursery.start_soon(one, addr, shard)
    return replies


async def test_shards_started_together_share_one_request_per_node() -> None:
    nodes = FakeNodes(unheld=frozenset({5}))
    sends = [(addr, shard) for shard in range(8) for addr in ("n1", "n2")]
    replies = await _send_all(ImportBatcher(nodes), sends)  # type: ignore[arg-type]
    assert sorted(addr for addr, _ in nodes.calls) == ["n1", "n2"]
    assert all(sorted(shards) == list(range(8)) for _, shards in nodes.calls)
    assert all(replies[a, s].status == (404 if s == 5 else 200) for a, s in sends)
    assert replies["n1", 5].error_code == "shard_not_held"  # what Router._call retries on
    # a later send starts a new batch
    await _send_all(ImportBatcher(nodes), [("n1", 5)])  # type: ignore[arg-type]
    assert nodes.calls[-1] == ("n1", [5])


async def test_a_failed_request_is_every_shards_answer() -> None:
    nodes = FakeNodes(status=400)
    replies = await _send_all(ImportBatcher(nodes), [("n1", 1), ("n1", 2)])  # type: ignore[arg-type]
    assert {r.status for r in replies.values()} == {400}
    nodes.fail = True
    with pytest.raises(NodeUnreachable):
        await ImportBatcher(nodes).send("n1", 1, b"")  # type: ignore[arg-type]
