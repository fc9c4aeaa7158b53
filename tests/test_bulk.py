"""POST /data/_bulk: many operations in one request, split by shard."""

from __future__ import annotations

import base64

from .conftest import LocalCluster


async def test_bulk_puts_gets_and_deletes_in_order(cluster: LocalCluster) -> None:
    ops = [{"op": "put", "key": f"bulk/{i}", "value": f"v{i}"} for i in range(300)]
    ops.append({"op": "put", "key": "binary", "value_b64": base64.b64encode(b"\xff\x00").decode()})
    ops.append({"op": "delete", "key": "bulk/7"})
    ops += [{"op": "get", "key": k} for k in ("bulk/1", "bulk/7", "binary", "never")]
    response = await cluster.http.post("/data/_bulk", json={"ops": ops})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(ops)
    assert all(r["status"] == 204 for r in results[:302])
    got = {r["key"]: r for r in results[302:]}
    assert got["bulk/1"] == {"key": "bulk/1", "op": "get", "status": 200, "value": "v1"}
    assert got["bulk/7"]["status"] == 404  # the request's own delete came first
    assert got["binary"]["value_b64"] == base64.b64encode(b"\xff\x00").decode()
    assert got["never"]["status"] == 404 and got["never"]["error"] == "key_not_found"
    # The same data through the single-key API, from every copy's shard.
    assert (await cluster.http.get("/data/bulk%2F299")).content == b"v299"
    assert (await cluster.http.get("/data/bulk%2F7")).status_code == 404


async def test_a_bad_bulk_request_changes_nothing(cluster: LocalCluster) -> None:
    before = await cluster.snapshot()
    for body in (
        {"ops": []},
        {"ops": [{"op": "put", "key": "a"}]},
        {
            "ops": [
                {"op": "put", "key": "a", "value": "x"},
                {"op": "put", "key": "b", "value_b64": "not base64!"},
            ]
        },
        {"ops": [{"op": "get", "key": "a", "value": "x"}]},
        {"ops": [{"op": "put", "key": "", "value": "x"}]},
        {"ops": [{"op": "merge", "key": "a"}]},
    ):
        response = await cluster.http.post("/data/_bulk", json=body)
        assert response.status_code == 400, (body, response.text)
    assert (await cluster.http.get("/data/a")).status_code == 404
    assert await cluster.snapshot() == before


async def test_writes_win_over_newer_versions_left_on_the_copies(cluster: LocalCluster) -> None:
    """Copies holding versions above the coordinator's counter (data from a coordinator
    whose clock ran ahead) answer "not applied"; neither API may count that as done."""
    from torua.cluster import shard_for_key

    future = 2**62
    num_shards = cluster.coordinator.state.table.num_shards
    for key in ("bulk-key", "single-key"):
        shard_id = shard_for_key(key, num_shards)
        for node in cluster.nodes.values():
            await node.store.put(shard_id, key, b"from-the-future", future)
    ops = [{"op": "put", "key": "bulk-key", "value": "now"}, {"op": "get", "key": "bulk-key"}]
    results = (await cluster.http.post("/data/_bulk", json={"ops": ops})).json()["results"]
    assert results[0]["status"] == 204
    assert results[1]["value"] == "now"
    assert (await cluster.http.put("/data/single-key", content=b"now")).status_code == 204
    assert (await cluster.http.get("/data/single-key")).content == b"now"
    for node in cluster.nodes.values():
        for key in ("bulk-key", "single-key"):
            record = await node.store.get(shard_for_key(key, num_shards), key)
            assert record is not None and record.value == b"now"
